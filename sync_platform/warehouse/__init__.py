"""The warehouse: connection, tables, schema evolution and the dialect (bulk) layer."""
