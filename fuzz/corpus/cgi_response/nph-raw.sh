HTTP/1.1 207 Straight Through
Content-Type: text/plain
X-Nph: yes

raw output
