"""newsrec serve: the web page over either backend."""
