"""The GraphQL layer: schema, context, permissions, types and DataLoaders."""
