Content-Type: text/plain

Hello from sh
