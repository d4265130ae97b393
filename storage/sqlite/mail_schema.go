package sqlite

// mailSchemaV1: accounts, mailboxes, messages, bodies. Owned by the mail
// store (store.go and friends).
const mailSchemaV1 = `
CREATE TABLE IF NOT EXISTS placeholder_mail (id INTEGER PRIMARY KEY);
`
