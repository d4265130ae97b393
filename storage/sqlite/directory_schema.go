package sqlite

// directorySchemaV1: directory entries, members, credentials, trust space.
// Owned by directory.go.
const directorySchemaV1 = `
CREATE TABLE IF NOT EXISTS placeholder_directory (id INTEGER PRIMARY KEY);
`
