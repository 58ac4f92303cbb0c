"""Fixed vocabularies of the sample world: US names, places, catalog words, junk values.

Kept as plain data (not drawn from a fake-data library at run time) so that output bytes depend
only on this file and the seed, and so a million persons can be sampled with numpy in one go.
Name lists follow the order of the US Census surname and SSA given-name rankings; sampling
weights are a Zipf curve over that rank, which is close enough for matching to be realistic
(common names collide, rare ones don't).
"""

from __future__ import annotations

from typing import Final

# fmt: off

FIRST_NAMES_FEMALE: Final[tuple[str, ...]] = (
    "Mary", "Patricia", "Jennifer", "Linda", "Elizabeth", "Barbara", "Susan", "Jessica",
    "Sarah", "Karen", "Lisa", "Nancy", "Betty", "Sandra", "Margaret", "Ashley", "Kimberly",
    "Emily", "Donna", "Michelle", "Carol", "Amanda", "Melissa", "Deborah", "Stephanie",
    "Dorothy", "Rebecca", "Sharon", "Laura", "Cynthia", "Amy", "Kathleen", "Angela", "Shirley",
    "Brenda", "Emma", "Anna", "Pamela", "Nicole", "Samantha", "Katherine", "Christine", "Helen",
    "Debra", "Rachel", "Carolyn", "Janet", "Maria", "Catherine", "Heather", "Diane", "Olivia",
    "Julie", "Joyce", "Victoria", "Ruth", "Virginia", "Lauren", "Kelly", "Christina", "Joan",
    "Evelyn", "Judith", "Andrea", "Hannah", "Megan", "Cheryl", "Jacqueline", "Martha",
    "Madison", "Teresa", "Gloria", "Sara", "Janice", "Ann", "Kathryn", "Abigail", "Sophia",
    "Frances", "Jean", "Alice", "Judy", "Isabella", "Julia", "Grace", "Amber", "Denise",
    "Danielle", "Marilyn", "Beverly", "Charlotte", "Natalie", "Theresa", "Diana", "Brittany",
    "Doris", "Kayla", "Alexis", "Lori", "Tiffany", "Rose", "Valerie", "Monica", "Vanessa",
    "Tamara", "Erin", "Leslie", "Allison", "Jasmine", "Crystal", "Guadalupe", "Gabriela",
    "Ana", "Lucia", "Rosa", "Ximena", "Mei", "Priya", "Fatima", "Yuki", "Aaliyah", "Zoe",
    "Chloe", "Sofia", "Renée", "Zoë", "Ingrid", "Bridget", "Siobhan", "Leah", "Naomi", "Aisha",
)

FIRST_NAMES_MALE: Final[tuple[str, ...]] = (
    "James", "Michael", "John", "Robert", "David", "William", "Richard", "Joseph", "Thomas",
    "Christopher", "Charles", "Daniel", "Matthew", "Anthony", "Mark", "Donald", "Steven",
    "Andrew", "Paul", "Joshua", "Kenneth", "Kevin", "Brian", "George", "Timothy", "Ronald",
    "Jason", "Edward", "Jeffrey", "Ryan", "Jacob", "Gary", "Nicholas", "Eric", "Jonathan",
    "Stephen", "Larry", "Justin", "Scott", "Brandon", "Benjamin", "Samuel", "Gregory",
    "Alexander", "Patrick", "Frank", "Raymond", "Jack", "Dennis", "Jerry", "Tyler", "Aaron",
    "Jose", "Adam", "Nathan", "Henry", "Zachary", "Douglas", "Peter", "Kyle", "Noah", "Ethan",
    "Jeremy", "Walter", "Christian", "Keith", "Roger", "Terry", "Austin", "Sean", "Gerald",
    "Carl", "Harold", "Dylan", "Arthur", "Lawrence", "Jordan", "Jesse", "Bryan", "Billy",
    "Bruce", "Gabriel", "Joe", "Logan", "Alan", "Juan", "Albert", "Willie", "Elijah", "Wayne",
    "Randy", "Vincent", "Mason", "Roy", "Ralph", "Bobby", "Russell", "Bradley", "Philip",
    "Eugene", "Luis", "Carlos", "Miguel", "Antonio", "Victor", "Marcus", "Theodore", "Abraham",
    "Isaac", "Caleb", "Owen", "Lucas", "Wei", "Raj", "Ahmed", "Mohammed", "Hiroshi", "Andre",
    "DeShawn", "Malik", "Tomás", "André", "Liam", "Declan", "Omar", "Tariq", "Kenji",
)

LAST_NAMES: Final[tuple[str, ...]] = (
    "Smith", "Johnson", "Williams", "Brown", "Jones", "Garcia", "Miller", "Davis", "Rodriguez",
    "Martinez", "Hernandez", "Lopez", "Gonzalez", "Wilson", "Anderson", "Thomas", "Taylor",
    "Moore", "Jackson", "Martin", "Lee", "Perez", "Thompson", "White", "Harris", "Sanchez",
    "Clark", "Ramirez", "Lewis", "Robinson", "Walker", "Young", "Allen", "King", "Wright",
    "Scott", "Torres", "Nguyen", "Hill", "Flores", "Green", "Adams", "Nelson", "Baker", "Hall",
    "Rivera", "Campbell", "Mitchell", "Carter", "Roberts", "Gomez", "Phillips", "Evans",
    "Turner", "Diaz", "Parker", "Cruz", "Edwards", "Collins", "Reyes", "Stewart", "Morris",
    "Morales", "Murphy", "Cook", "Rogers", "Gutierrez", "Ortiz", "Morgan", "Cooper", "Peterson",
    "Bailey", "Reed", "Kelly", "Howard", "Ramos", "Kim", "Cox", "Ward", "Richardson", "Watson",
    "Brooks", "Chavez", "Wood", "James", "Bennett", "Gray", "Mendoza", "Ruiz", "Hughes",
    "Price", "Alvarez", "Castillo", "Sanders", "Patel", "Myers", "Long", "Ross", "Foster",
    "Jimenez", "Powell", "Jenkins", "Perry", "Russell", "Sullivan", "Bell", "Coleman",
    "Butler", "Henderson", "Barnes", "Gonzales", "Fisher", "Vasquez", "Simmons", "Romero",
    "Jordan", "Patterson", "Alexander", "Hamilton", "Graham", "Reynolds", "Griffin", "Wallace",
    "Moreno", "West", "Cole", "Hayes", "Bryant", "Herrera", "Gibson", "Ellis", "Tran",
    "Medina", "Aguilar", "Stevens", "Murray", "Ford", "Castro", "Marshall", "Owens",
    "Harrison", "Fernandez", "McDonald", "Woods", "Washington", "Kennedy", "Wells", "Vargas",
    "Henry", "Chen", "Freeman", "Webb", "Tucker", "Guzman", "Burns", "Crawford", "Olson",
    "Simpson", "Porter", "Hunter", "Gordon", "Mendez", "Silva", "Shaw", "Snyder", "Mason",
    "Dixon", "Muñoz", "Hunt", "Hicks", "Holmes", "Palmer", "Wagner", "Black", "Robertson",
    "Boyd", "Rose", "Stone", "Salazar", "Fox", "Warren", "Mills", "Meyer", "Rice", "Schmidt",
    "Garza", "Daniels", "Ferguson", "Nichols", "Stephens", "Soto", "Weaver", "Ryan", "Gardner",
    "Payne", "Grant", "Dunn", "Kelley", "Spencer", "Hawkins", "Arnold", "Pierce", "Vazquez",
    "Hansen", "Peters", "Santos", "Hart", "Bradley", "Knight", "Elliott", "Cunningham",
    "Duncan", "Armstrong", "Hudson", "Carroll", "Lane", "Riley", "Andrews", "Alvarado", "Ray",
    "Delgado", "Berry", "Perkins", "Hoffman", "Johnston", "Matthews", "Peña", "Richards",
    "Contreras", "Willis", "Carpenter", "Lawrence", "Sandoval", "O'Brien", "O'Connor", "Wang",
    "Li", "Zhang", "Liu", "Singh", "Shah", "Cohen", "Goldberg", "Kowalski", "Nowak", "Rossi",
    "Russo", "Yamamoto", "Tanaka", "Van Dyke", "De La Cruz", "Okafor", "Haddad", "Schwartz",
    "Lindqvist", "Fitzgerald", "MacLeod", "Dubois", "Bianchi", "Costa", "Ivanov", "Park",
)

#: (formal name, nickname). A formal name may have several nicknames.
NICKNAME_PAIRS: Final[tuple[tuple[str, str], ...]] = (
    ("Robert", "Bob"), ("Robert", "Rob"), ("Robert", "Bobby"), ("William", "Bill"),
    ("William", "Will"), ("William", "Billy"), ("Elizabeth", "Liz"), ("Elizabeth", "Beth"),
    ("Elizabeth", "Betsy"), ("Katherine", "Kate"), ("Katherine", "Katie"), ("Catherine", "Cathy"),
    ("Kathleen", "Kathy"), ("James", "Jim"), ("James", "Jimmy"), ("John", "Jack"),
    ("John", "Johnny"), ("Michael", "Mike"), ("Richard", "Rick"), ("Richard", "Dick"),
    ("Thomas", "Tom"), ("Joseph", "Joe"), ("Charles", "Charlie"), ("Charles", "Chuck"),
    ("Christopher", "Chris"), ("Daniel", "Dan"), ("Daniel", "Danny"), ("Matthew", "Matt"),
    ("Anthony", "Tony"), ("Steven", "Steve"), ("Stephen", "Steve"), ("Andrew", "Andy"),
    ("Andrew", "Drew"), ("Edward", "Ed"), ("Edward", "Eddie"), ("Jennifer", "Jen"),
    ("Jennifer", "Jenny"), ("Jessica", "Jess"), ("Margaret", "Peggy"), ("Margaret", "Maggie"),
    ("Patricia", "Pat"), ("Patricia", "Trish"), ("Susan", "Sue"), ("Deborah", "Debbie"),
    ("Debra", "Deb"), ("Rebecca", "Becky"), ("Samantha", "Sam"), ("Samuel", "Sam"),
    ("Kimberly", "Kim"), ("Victoria", "Vicky"), ("Alexander", "Alex"), ("Alexandra", "Alex"),
    ("Benjamin", "Ben"), ("Nicholas", "Nick"), ("Jonathan", "Jon"), ("Timothy", "Tim"),
    ("Gregory", "Greg"), ("Kenneth", "Ken"), ("Ronald", "Ron"), ("Donald", "Don"),
    ("Jacqueline", "Jackie"), ("Christine", "Chris"), ("Abigail", "Abby"), ("Theodore", "Ted"),
    ("Lawrence", "Larry"), ("Gerald", "Jerry"), ("Raymond", "Ray"), ("Zachary", "Zach"),
    ("Joshua", "Josh"), ("Jeffrey", "Jeff"), ("Dorothy", "Dot"), ("Barbara", "Barb"),
    ("Pamela", "Pam"), ("Cynthia", "Cindy"), ("Judith", "Judy"), ("Frances", "Fran"),
    ("Virginia", "Ginny"), ("Nathan", "Nate"), ("Douglas", "Doug"), ("Philip", "Phil"),
    ("Kathryn", "Kate"), ("Christina", "Tina"), ("Teresa", "Terri"), ("Theresa", "Tess"),
)

#: Forced look-alikes: several different persons get exactly these names.
COMMON_NAME_COLLISIONS: Final[tuple[tuple[str, str, str], ...]] = (
    ("M", "John", "Smith"),
    ("M", "Michael", "Johnson"),
    ("M", "James", "Williams"),
    ("F", "Maria", "Garcia"),
    ("F", "Jennifer", "Brown"),
    ("F", "Mary", "Jones"),
)

#: (city, state, 3-digit ZIP prefix, area codes, population weight). Leading-zero ZIPs are
#: deliberate (New England, New Jersey, Puerto Rico); two Springfields and two Portlands too.
CITIES: Final[tuple[tuple[str, str, str, tuple[int, ...], float], ...]] = (
    ("New York", "NY", "100", (212, 646, 917), 84.0),
    ("Brooklyn", "NY", "112", (718, 347), 26.0),
    ("Los Angeles", "CA", "900", (213, 323, 310), 39.0),
    ("Chicago", "IL", "606", (312, 773), 27.0),
    ("Houston", "TX", "770", (713, 281, 832), 23.0),
    ("Phoenix", "AZ", "850", (602, 480), 16.0),
    ("Philadelphia", "PA", "191", (215, 267), 16.0),
    ("San Antonio", "TX", "782", (210,), 15.0),
    ("San Diego", "CA", "921", (619, 858), 14.0),
    ("Dallas", "TX", "752", (214, 469, 972), 13.0),
    ("San Jose", "CA", "951", (408,), 10.0),
    ("Austin", "TX", "787", (512,), 10.0),
    ("Jacksonville", "FL", "322", (904,), 9.0),
    ("Fort Worth", "TX", "761", (817, 682), 9.2),
    ("Columbus", "OH", "432", (614,), 9.0),
    ("Charlotte", "NC", "282", (704,), 9.0),
    ("San Francisco", "CA", "941", (415,), 8.7),
    ("Indianapolis", "IN", "462", (317,), 8.7),
    ("Seattle", "WA", "981", (206,), 7.5),
    ("Denver", "CO", "802", (303, 720), 7.2),
    ("Washington", "DC", "200", (202,), 7.0),
    ("Boston", "MA", "021", (617, 857), 6.9),
    ("Nashville", "TN", "372", (615,), 6.9),
    ("El Paso", "TX", "799", (915,), 6.8),
    ("Oklahoma City", "OK", "731", (405,), 6.8),
    ("Detroit", "MI", "482", (313,), 6.7),
    ("Portland", "OR", "972", (503, 971), 6.5),
    ("Las Vegas", "NV", "891", (702,), 6.4),
    ("Memphis", "TN", "381", (901,), 6.3),
    ("Louisville", "KY", "402", (502,), 6.2),
    ("Baltimore", "MD", "212", (410, 443), 5.9),
    ("Milwaukee", "WI", "532", (414,), 5.9),
    ("Albuquerque", "NM", "871", (505,), 5.6),
    ("Tucson", "AZ", "857", (520,), 5.4),
    ("Fresno", "CA", "937", (559,), 5.3),
    ("Sacramento", "CA", "958", (916,), 5.1),
    ("Mesa", "AZ", "852", (480,), 5.0),
    ("Kansas City", "MO", "641", (816,), 5.0),
    ("Atlanta", "GA", "303", (404, 470, 678), 5.0),
    ("Omaha", "NE", "681", (402,), 4.8),
    ("Colorado Springs", "CO", "809", (719,), 4.8),
    ("Raleigh", "NC", "276", (919,), 4.7),
    ("Miami", "FL", "331", (305, 786), 4.7),
    ("Long Beach", "CA", "908", (562,), 4.6),
    ("Virginia Beach", "VA", "234", (757,), 4.5),
    ("Oakland", "CA", "946", (510,), 4.4),
    ("Minneapolis", "MN", "554", (612,), 4.3),
    ("Tulsa", "OK", "741", (918,), 4.0),
    ("Wichita", "KS", "672", (316,), 4.0),
    ("Bakersfield", "CA", "933", (661,), 4.0),
    ("Tampa", "FL", "336", (813,), 3.9),
    ("Arlington", "TX", "760", (817,), 3.9),
    ("Aurora", "CO", "800", (303, 720), 3.9),
    ("Cleveland", "OH", "441", (216,), 3.8),
    ("New Orleans", "LA", "701", (504,), 3.8),
    ("Honolulu", "HI", "968", (808,), 3.5),
    ("Anaheim", "CA", "928", (714,), 3.5),
    ("San Juan", "PR", "009", (787, 939), 3.4),
    ("Newark", "NJ", "071", (973, 862), 3.1),
    ("St. Paul", "MN", "551", (651,), 3.1),
    ("Pittsburgh", "PA", "152", (412,), 3.0),
    ("St. Louis", "MO", "631", (314,), 3.0),
    ("Cincinnati", "OH", "452", (513,), 3.0),
    ("Orlando", "FL", "328", (407,), 3.0),
    ("Anchorage", "AK", "995", (907,), 2.9),
    ("Jersey City", "NJ", "073", (201,), 2.9),
    ("Buffalo", "NY", "142", (716,), 2.8),
    ("Madison", "WI", "537", (608,), 2.7),
    ("Boise", "ID", "837", (208,), 2.3),
    ("Richmond", "VA", "232", (804,), 2.3),
    ("Spokane", "WA", "992", (509,), 2.2),
    ("Des Moines", "IA", "503", (515,), 2.1),
    ("Rochester", "NY", "146", (585,), 2.1),
    ("Salt Lake City", "UT", "841", (801,), 2.0),
    ("Little Rock", "AR", "722", (501,), 2.0),
    ("Birmingham", "AL", "352", (205,), 2.0),
    ("Worcester", "MA", "016", (508, 774), 2.0),
    ("Providence", "RI", "029", (401,), 1.9),
    ("Paterson", "NJ", "075", (973,), 1.6),
    ("Springfield", "MA", "011", (413,), 1.5),
    ("Springfield", "IL", "627", (217,), 1.1),
    ("Bridgeport", "CT", "066", (203,), 1.5),
    ("Charleston", "SC", "294", (843,), 1.5),
    ("New Haven", "CT", "065", (203,), 1.3),
    ("Stamford", "CT", "069", (203,), 1.3),
    ("Hartford", "CT", "061", (860,), 1.2),
    ("Cambridge", "MA", "021", (617, 857), 1.2),
    ("Lowell", "MA", "018", (978,), 1.1),
    ("Manchester", "NH", "031", (603,), 1.1),
    ("Trenton", "NJ", "086", (609,), 0.9),
    ("Portland", "ME", "041", (207,), 0.7),
    ("Burlington", "VT", "054", (802,), 0.45),
)

STATE_NAMES: Final[dict[str, str]] = {
    "AK": "Alaska", "AL": "Alabama", "AR": "Arkansas", "AZ": "Arizona", "CA": "California",
    "CO": "Colorado", "CT": "Connecticut", "DC": "District of Columbia", "FL": "Florida",
    "GA": "Georgia", "HI": "Hawaii", "IA": "Iowa", "ID": "Idaho", "IL": "Illinois",
    "IN": "Indiana", "KS": "Kansas", "KY": "Kentucky", "LA": "Louisiana", "MA": "Massachusetts",
    "MD": "Maryland", "ME": "Maine", "MI": "Michigan", "MN": "Minnesota", "MO": "Missouri",
    "NC": "North Carolina", "NE": "Nebraska", "NH": "New Hampshire", "NJ": "New Jersey",
    "NM": "New Mexico", "NV": "Nevada", "NY": "New York", "OH": "Ohio", "OK": "Oklahoma",
    "OR": "Oregon", "PA": "Pennsylvania", "PR": "Puerto Rico", "RI": "Rhode Island",
    "SC": "South Carolina", "TN": "Tennessee", "TX": "Texas", "UT": "Utah", "VA": "Virginia",
    "VT": "Vermont", "WA": "Washington", "WI": "Wisconsin",
}

STREET_NAMES: Final[tuple[str, ...]] = (
    "Main", "Oak", "Maple", "Pine", "Cedar", "Elm", "Washington", "Lake", "Hill", "Park",
    "Walnut", "Sunset", "Lincoln", "Jackson", "Church", "River", "Highland", "Spring", "Forest",
    "Willow", "Meadow", "Chestnut", "Franklin", "Madison", "Jefferson", "Adams", "Ridge",
    "Valley", "Center", "Union", "Mill", "School", "Prospect", "Broad", "Market", "Water",
    "Harbor", "Summit", "Birch", "Hickory", "Magnolia", "Dogwood", "Sycamore", "Laurel",
    "Poplar", "Cherry", "Orchard", "Greenwood", "Fairview", "Lakeview", "Hillcrest",
    "Riverside", "Woodland", "Kingston", "Commonwealth", "Beacon", "Grand", "Pleasant",
    "Central", "Colonial", "Martin Luther King Jr", "Cambridge", "Dover", "Evergreen",
)

#: (full suffix, postal abbreviation)
STREET_SUFFIXES: Final[tuple[tuple[str, str], ...]] = (
    ("Street", "St"), ("Avenue", "Ave"), ("Road", "Rd"), ("Drive", "Dr"), ("Lane", "Ln"),
    ("Boulevard", "Blvd"), ("Court", "Ct"), ("Place", "Pl"), ("Terrace", "Ter"),
    ("Circle", "Cir"), ("Parkway", "Pkwy"), ("Way", "Way"),
)

#: (provider domain, weight)
EMAIL_PROVIDERS: Final[tuple[tuple[str, float], ...]] = (
    ("gmail.com", 45.0), ("yahoo.com", 14.0), ("outlook.com", 8.0), ("hotmail.com", 8.0),
    ("icloud.com", 8.0), ("aol.com", 4.0), ("comcast.net", 3.0), ("protonmail.com", 2.0),
    ("msn.com", 2.0), ("att.net", 2.0), ("verizon.net", 2.0), ("me.com", 2.0),
)

#: Typos of provider domains seen in real sign-up forms; such addresses bounce.
EMAIL_DOMAIN_TYPOS: Final[dict[str, str]] = {
    "gmail.com": "gmial.com", "yahoo.com": "yaho.com", "outlook.com": "outlok.com",
    "hotmail.com": "hotmial.com", "icloud.com": "iclod.com", "aol.com": "aol.co",
    "comcast.net": "comcast.com", "protonmail.com": "protonmai.com", "msn.com": "msn.co",
    "att.net": "att.com", "verizon.net": "verizon.com", "me.com": "me.co",
}

JUNK_EMAILS: Final[tuple[str, ...]] = (
    "test@example.com", "none@none.com", "n/a", "asdf", "noemail@noemail.com", "na@na.com",
)
JUNK_PHONES: Final[tuple[str, ...]] = (
    "0000000000", "1234567890", "5555555555", "n/a", "999-999-9999", "none",
)
JUNK_NAMES: Final[tuple[str, ...]] = ("n/a", "test", "asdf", "xxx", "unknown", "none")

#: (category, url slug, base popularity, median price USD, product nouns)
CATEGORIES: Final[tuple[tuple[str, str, float, float, tuple[str, ...]], ...]] = (
    ("Apparel", "apparel", 1.6, 40.0, (
        "T-Shirt", "Hoodie", "Jeans", "Jacket", "Sweater", "Dress", "Chinos", "Polo Shirt",
        "Leggings", "Flannel Shirt")),
    ("Footwear", "footwear", 1.0, 85.0, (
        "Running Shoes", "Sneakers", "Boots", "Sandals", "Loafers", "Trail Shoes", "Slippers")),
    ("Electronics", "electronics", 1.2, 120.0, (
        "Wireless Earbuds", "Bluetooth Speaker", "Smartwatch", "Headphones", "Power Bank",
        "Tablet", "E-Reader", "Webcam", "Keyboard", "Monitor", "4K TV", "Soundbar", "Laptop")),
    ("Home & Kitchen", "home-kitchen", 1.3, 60.0, (
        "Blender", "Coffee Maker", "Cookware Set", "Knife Set", "Toaster", "Air Fryer",
        "Dinnerware Set", "Bath Towels", "Bed Sheets", "Throw Pillow", "Robot Vacuum",
        "Stand Mixer")),
    ("Beauty", "beauty", 1.0, 25.0, (
        "Moisturizer", "Shampoo", "Conditioner", "Lipstick", "Face Serum", "Perfume",
        "Sunscreen", "Hair Dryer")),
    ("Sports & Outdoors", "sports-outdoors", 0.9, 50.0, (
        "Yoga Mat", "Tent", "Backpack", "Water Bottle", "Dumbbells", "Bike Helmet",
        "Sleeping Bag", "Camping Chair")),
    ("Toys & Games", "toys-games", 0.7, 30.0, (
        "Board Game", "Puzzle", "Building Blocks", "Action Figure", "Plush Toy", "Card Game",
        "RC Car")),
    ("Books", "books", 0.8, 18.0, (
        "Cookbook", "Mystery Novel", "Sci-Fi Novel", "Biography", "Picture Book",
        "Travel Guide")),
    ("Grocery", "grocery", 0.9, 12.0, (
        "Coffee Beans", "Green Tea", "Olive Oil", "Granola", "Dark Chocolate", "Pasta Sauce",
        "Trail Mix")),
    ("Pet Supplies", "pet-supplies", 0.6, 30.0, (
        "Dog Food", "Cat Litter", "Dog Leash", "Cat Tree", "Pet Bed", "Chew Toy")),
    ("Jewelry & Accessories", "jewelry-accessories", 0.6, 70.0, (
        "Necklace", "Watch", "Sunglasses", "Wallet", "Handbag", "Earrings", "Belt")),
    ("Health & Wellness", "health-wellness", 0.7, 30.0, (
        "Multivitamin", "Protein Powder", "Fish Oil", "Thermometer", "Massage Gun",
        "First Aid Kit")),
)

#: Fictional brands, so no real trademark appears in generated data.
BRANDS: Final[tuple[str, ...]] = (
    "Northwind", "Bluepeak", "Cedar & Co", "Lumen", "Ironwood", "Harbor Lane", "Silverline",
    "Oakridge", "Brightway", "Summit Gear", "Evergreen", "Pixelon", "Nimbus", "Vela",
    "Aurora Home", "Coastal Thread", "Redfern", "Kestrel", "Maple & Main", "Granite", "Solace",
    "Meridian", "Tidewater", "Fable", "Pioneer", "Willow", "Zephyr", "Copperleaf", "Atlas",
    "Juniper", "Halcyon", "Lark", "Fernhill", "Brixton", "Quill", "Sable", "Orchard",
    "Trailhead", "Nova", "Wren",
)

PRODUCT_ADJECTIVES: Final[tuple[str, ...]] = (
    "Classic", "Essential", "Premium", "Ultra", "Pro", "Everyday", "Eco", "Vintage", "Lite",
    "Max", "Signature", "Urban", "Compact", "Cozy", "Smart", "Deluxe", "Sport", "Organic",
)

#: (device, user agent, weight). Each cookie keeps one user agent.
USER_AGENTS: Final[tuple[tuple[str, str, float], ...]] = (
    ("desktop", "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like "
     "Gecko) Chrome/124.0.0.0 Safari/537.36", 20.0),
    ("desktop", "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, "
     "like Gecko) Version/17.4 Safari/605.1.15", 9.0),
    ("desktop", "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:125.0) Gecko/20100101 "
     "Firefox/125.0", 5.0),
    ("desktop", "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like "
     "Gecko) Chrome/124.0.0.0 Safari/537.36 Edg/124.0.0.0", 6.0),
    ("desktop", "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
     "Chrome/123.0.0.0 Safari/537.36", 1.5),
    ("mobile", "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 "
     "(KHTML, like Gecko) Version/17.4 Mobile/15E148 Safari/604.1", 22.0),
    ("mobile", "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like "
     "Gecko) Chrome/124.0.0.0 Mobile Safari/537.36", 8.0),
    ("mobile", "Mozilla/5.0 (Linux; Android 14; SM-S918U) AppleWebKit/537.36 (KHTML, like "
     "Gecko) Chrome/124.0.0.0 Mobile Safari/537.36", 10.0),
    ("mobile", "Mozilla/5.0 (iPhone; CPU iPhone OS 16_6 like Mac OS X) AppleWebKit/605.1.15 "
     "(KHTML, like Gecko) CriOS/124.0.6367.88 Mobile/15E148 Safari/604.1", 5.0),
    ("tablet", "Mozilla/5.0 (iPad; CPU OS 17_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, "
     "like Gecko) Version/17.4 Mobile/15E148 Safari/604.1", 6.0),
    ("tablet", "Mozilla/5.0 (Linux; Android 13; SM-X700) AppleWebKit/537.36 (KHTML, like "
     "Gecko) Chrome/124.0.0.0 Safari/537.36", 2.0),
)

#: Non-email acquisition channels: (utm_source, utm_medium, utm_campaign, weight).
UTM_CHANNELS: Final[tuple[tuple[str, str, str, float], ...]] = (
    ("google", "cpc", "brand_search", 30.0),
    ("google", "cpc", "shopping", 20.0),
    ("bing", "cpc", "brand_search", 5.0),
    ("facebook", "paid_social", "retargeting", 15.0),
    ("instagram", "paid_social", "new_arrivals", 12.0),
    ("tiktok", "paid_social", "trending", 6.0),
    ("partner_deals", "affiliate", "partner_deals", 7.0),
    ("pinterest", "social", "inspiration", 5.0),
)

SHOP_URL: Final[str] = "https://shop.example.com"

#: Static pages that page_view events land on besides category pages.
STATIC_PAGES: Final[tuple[str, ...]] = (
    "/", "/deals", "/new-arrivals", "/help/shipping", "/stores", "/gift-cards",
)
# fmt: on

#: How each category is bought again, by url slug: (kind, cycle in days). A durable (a TV, an
#: air fryer, a tent) is rarely bought again within its cycle; a consumable (coffee, shampoo,
#: dog food) is due again after about its cycle; "semi" goods (clothes, toys, books) recover
#: linearly. Used by the response model (``response.category_cycle_multiplier``).
CATEGORY_CYCLES: Final[dict[str, tuple[str, int]]] = {
    "apparel": ("semi", 75),
    "footwear": ("durable", 240),
    "electronics": ("durable", 540),
    "home-kitchen": ("durable", 365),
    "beauty": ("consumable", 40),
    "sports-outdoors": ("durable", 300),
    "toys-games": ("semi", 120),
    "books": ("semi", 45),
    "grocery": ("consumable", 21),
    "pet-supplies": ("consumable", 30),
    "jewelry-accessories": ("durable", 365),
    "health-wellness": ("consumable", 35),
}

#: Sale themes of the flash-sale calendar: (slug, title, season as (first, last) "MM-DD" or
#: None for any day, weight among the day's sales, appeal of an email featuring it: a factor
#: on the chance to open). Seasonal themes take most of a day's sales inside their season.
SALE_THEMES: Final[tuple[tuple[str, str, tuple[str, str] | None, float, float], ...]] = (
    ("brand-spotlight", "Brand Spotlight", None, 30.0, 1.0),
    ("new-arrivals", "New Arrivals", None, 12.0, 1.0),
    ("top-rated", "Top Rated", None, 8.0, 1.0),
    ("under-25", "Under $25", None, 8.0, 1.05),
    ("clearance", "Clearance", None, 6.0, 1.1),
    ("flash-deal", "24-Hour Flash Deal", None, 6.0, 1.15),
    ("weekend-deals", "Weekend Deals", None, 5.0, 1.0),
    ("valentines", "Valentine's Day", ("02-01", "02-14"), 60.0, 1.1),
    ("spring-refresh", "Spring Refresh", ("03-15", "04-30"), 40.0, 1.0),
    ("mothers-day", "Mother's Day", ("04-28", "05-11"), 60.0, 1.1),
    ("summer-sale", "Summer Sale", ("06-15", "07-31"), 50.0, 1.1),
    ("back-to-school", "Back to School", ("08-01", "09-05"), 50.0, 1.05),
    ("halloween", "Halloween", ("10-15", "10-31"), 40.0, 1.0),
    ("black-friday", "Black Friday", ("11-20", "12-02"), 150.0, 1.3),
    ("holiday-gifts", "Holiday Gifts", ("12-03", "12-23"), 100.0, 1.2),
    ("new-year", "New Year, New You", ("12-27", "01-10"), 60.0, 1.05),
)
