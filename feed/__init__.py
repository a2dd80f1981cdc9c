"""newsrec serving side: documents, backends (Vespa and the embedded default), feeding, queries."""
