Content-Type: text/plain
Content-Length: 6

exact
