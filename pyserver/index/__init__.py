"""The workspace index: files, chunks, symbols, split-identifier full text and compressed embeddings in one SQLite
file per workspace, kept live by a file watcher (see README "Workspace index")."""
