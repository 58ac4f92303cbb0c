"""Common English nicknames and the formal first name each stands for.

A data table, not logic: ``first_name_canonical`` maps a nickname to its formal name so that
"Bob Smith" and "Robert Smith" compare equal. Where a nickname serves several formal names
("Alex": Alexander / Alexandra) the most frequent one is kept; the matcher still compares the
written first name too, so the choice only decides which pairs get the nickname credit.
"""

from __future__ import annotations

from typing import Final

_FORMAL_TO_NICKNAMES: Final[dict[str, tuple[str, ...]]] = {
    "abigail": ("abby", "abbie", "gail"),
    "abraham": ("abe",),
    "albert": ("al", "bert", "bertie"),
    "alexander": ("alex", "alec", "xander", "sasha", "lex"),
    "alexandra": ("alex", "lexi", "lexie", "sandy", "alexa", "sasha"),
    "alfred": ("alf", "alfie", "fred", "freddie"),
    "allison": ("allie", "ally"),
    "amanda": ("mandy", "manda"),
    "andrew": ("andy", "drew"),
    "angela": ("angie",),
    "anthony": ("tony",),
    "arthur": ("art", "artie"),
    "barbara": ("barb", "barbie", "babs"),
    "benjamin": ("ben", "benny", "benji"),
    "bernard": ("bernie",),
    "beverly": ("bev",),
    "bradley": ("brad",),
    "calvin": ("cal",),
    "cameron": ("cam",),
    "caroline": ("carrie",),
    "catherine": ("cathy", "cath", "cate", "kate", "katie", "cat"),
    "charles": ("charlie", "chuck", "chas", "chaz"),
    "charlotte": ("lottie", "charlie"),
    "christina": ("tina", "chrissy", "chris"),
    "christine": ("chris", "chrissy", "tina"),
    "christopher": ("chris", "kit", "topher"),
    "clifford": ("cliff",),
    "cynthia": ("cindy", "cyndi"),
    "daniel": ("dan", "danny"),
    "david": ("dave", "davey", "davy"),
    "deborah": ("debbie", "deb", "debby"),
    "debra": ("deb", "debbie", "debby"),
    "dennis": ("denny",),
    "dominic": ("dom", "nick"),
    "donald": ("don", "donnie", "donny"),
    "dorothy": ("dot", "dottie", "dolly"),
    "douglas": ("doug",),
    "edward": ("ed", "eddie", "eddy", "ted", "teddy", "ned"),
    "eleanor": ("ellie", "nell", "nellie"),
    "elizabeth": ("liz", "lizzie", "lizzy", "beth", "betty", "betsy", "libby", "bess"),
    "emily": ("em", "emmy", "millie"),
    "eugene": ("gene",),
    "frances": ("fran", "frannie"),
    "francis": ("frank", "frankie"),
    "frederick": ("freddy", "fritz"),
    "gabriel": ("gabe",),
    "gabrielle": ("gabby", "gabi"),
    "gwendolyn": ("gwen",),
    "geoffrey": ("geoff", "jeff"),
    "gerald": ("gerry", "jerry"),
    "gregory": ("greg",),
    "harold": ("hal", "harry"),
    "helen": ("nellie",),
    "henry": ("hank", "hal"),
    "herbert": ("herb", "herbie"),
    "isabella": ("bella", "izzy", "isa"),
    "jacob": ("jake", "jakey"),
    "jacqueline": ("jackie", "jacky", "jacquie"),
    "james": ("jim", "jimmy", "jamie", "jimbo"),
    "janet": ("jan",),
    "jeffrey": ("jeff",),
    "jennifer": ("jen", "jenn", "jenny", "jenni"),
    "jessica": ("jess", "jessie"),
    "jonathan": ("jon", "jonny", "johnny"),
    "john": ("jack", "johnnie", "johnny"),
    "joseph": ("joe", "joey"),
    "joshua": ("josh",),
    "judith": ("judy", "judi"),
    "katherine": ("kate", "kathy", "katie", "kat", "kay", "kitty", "katy"),
    "kathleen": ("kathy", "kath", "katie", "kate", "kay"),
    "kathryn": ("kate", "kathy", "katie", "kat", "kay"),
    "kenneth": ("ken", "kenny"),
    "kimberly": ("kim", "kimmy"),
    "lawrence": ("larry", "laurie"),
    "leonard": ("leo", "len", "lenny"),
    "leslie": ("les",),
    "lillian": ("lily", "lil", "lilly"),
    "louis": ("lou", "louie"),
    "louise": ("lou", "lulu"),
    "margaret": ("maggie", "meg", "peggy", "marge", "margie", "madge"),
    "matthew": ("matt", "matty"),
    "mary": ("molly", "polly", "mae", "mamie"),
    "megan": ("meg",),
    "melissa": ("mel", "missy", "lissa"),
    "michael": ("mike", "mikey", "mick", "mickey", "mitch"),
    "michelle": ("shelly", "shell"),
    "nathan": ("nate",),
    "nathaniel": ("nat", "nathan", "nate"),
    "nicholas": ("nick", "nicky", "nico"),
    "nicole": ("nikki", "nicki"),
    "oliver": ("ollie",),
    "olivia": ("liv", "livvy"),
    "pamela": ("pam", "pammy"),
    "patricia": ("pat", "patty", "patti", "tricia", "trish"),
    "patrick": ("paddy", "pat"),
    "peter": ("pete",),
    "philip": ("phil", "pip"),
    "phillip": ("phil",),
    "rebecca": ("becky", "becca", "reba"),
    "raymond": ("ray",),
    "richard": ("rich", "richie", "dick", "rick", "ricky"),
    "robert": ("bob", "bobby", "rob", "robbie", "bert", "robby"),
    "ronald": ("ron", "ronnie", "ronny"),
    "rosemary": ("rosie",),
    "samantha": ("sam", "sammie", "sammy"),
    "samuel": ("sam", "sammy", "sammie"),
    "sandra": ("sandy",),
    "sarah": ("sally", "sadie"),
    "stephanie": ("steph", "stephie"),
    "stephen": ("steve", "stevie"),
    "steven": ("steve", "stevie"),
    "susan": ("sue", "susie", "suzy", "suzie"),
    "teresa": ("terri", "terry", "tess", "tessa", "tracy"),
    "theresa": ("terri", "terry", "tess", "tessa", "tracy"),
    "terence": ("terry",),
    "theodore": ("theo", "ted", "teddy"),
    "thomas": ("tom", "tommy", "thom"),
    "timothy": ("tim", "timmy"),
    "valerie": ("val",),
    "victoria": ("vicky", "vicki", "vickie", "tori", "vic"),
    "virginia": ("ginny", "ginger", "jinny"),
    "vincent": ("vince", "vinny", "vinnie"),
    "walter": ("walt", "wally"),
    "william": ("bill", "billy", "will", "willy", "willie"),
    "zachary": ("zach", "zack", "zak"),
}


def _invert(table: dict[str, tuple[str, ...]]) -> dict[str, str]:
    # First formal name listed wins for a shared nickname; formal names never get remapped.
    nickname_to_formal: dict[str, str] = {}
    for formal, nicknames in table.items():
        for nickname in nicknames:
            if nickname not in table:
                nickname_to_formal.setdefault(nickname, formal)
    return nickname_to_formal


def _all_formals(table: dict[str, tuple[str, ...]]) -> dict[str, frozenset[str]]:
    formals: dict[str, set[str]] = {}
    for formal, nicknames in table.items():
        formals.setdefault(formal, set()).add(formal)
        for nickname in nicknames:
            formals.setdefault(nickname, set()).add(formal)
    return {name: frozenset(values) for name, values in formals.items()}


#: Where a nickname serves several formal names, the canonical one (the most frequent).
_PREFERRED: Final[dict[str, str]] = {
    "chris": "christopher",
    "alex": "alexander",
    "sam": "samuel",
    "pat": "patricia",
    "kate": "katherine",
    "kathy": "katherine",
    "katie": "katherine",
    "terry": "terence",
    "deb": "deborah",
    "tina": "christina",
}

#: nickname (casefolded, accents stripped) -> formal first name.
NICKNAMES: Final[dict[str, str]] = _invert(_FORMAL_TO_NICKNAMES) | _PREFERRED
#: any name in the table -> every formal name it may stand for (itself included if formal).
NAME_FORMALS: Final[dict[str, frozenset[str]]] = _all_formals(_FORMAL_TO_NICKNAMES)


def canonical_first_name(name: str | None) -> str | None:
    """The formal name a normalized first name stands for (itself when not a nickname)."""
    if name is None:
        return None
    return NICKNAMES.get(name, name)


def may_be_same_first_name(a: str, b: str) -> bool:
    """Whether two first names can name the same person through the nickname table."""
    if a == b:
        return True
    formals_a = NAME_FORMALS.get(a, frozenset({a}))
    formals_b = NAME_FORMALS.get(b, frozenset({b}))
    return bool(formals_a & formals_b)
