"""A chat-completions endpoint for the judge tests (tests/judges.rs), speaking
the OpenAI format as vLLM and llama.cpp's server do, and judging by a rule:
an answer that says "not sure" is poor (2 of 10), any other good (9 of 10);
of two answers the one without "not sure" wins, else a tie. Asked for a
critique (Constitutional AI), it names the "not sure"; asked for a
revision, it drops it.

To test the client's handling of failure, a request whose text contains
FLAKY fails with 503 twice before it succeeds, GARBAGE gets a reply with no
verdict in it, and SLOW is answered after two seconds. With a key variable
named on the command line, a request without `Authorization: Bearer $VAR`
gets 401. Prints the port it listens on, then serves until killed.

    python3 tests/support/judge_server.py [KEY_VARIABLE]
"""

import json
import os
import re
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

KEY = os.environ.get(sys.argv[1]) if len(sys.argv) > 1 else None
FLAKY_SEEN = {}
LOCK = threading.Lock()


def section(text, name):
    match = re.search(r"\[" + re.escape(name) + r"\]\n(.*?)(\n\n\[|\n\nReply|$)", text, re.S)
    return match.group(1) if match else ""


def good(answer):
    return "not sure" not in answer


def verdict(user):
    if "[Critique]" in user:
        return section(user, "Answer").replace(" I am not sure.", "")
    if "Reply with the critique only" in user:
        return "It says it is not sure." if not good(section(user, "Answer")) else "Nothing to change."
    if "[Answer A]" in user:
        a, b = good(section(user, "Answer A")), good(section(user, "Answer B"))
        return "A" if a and not b else "B" if b and not a else "tie"
    return "9" if good(section(user, "Answer")) else "2"


class Handler(BaseHTTPRequestHandler):
    def do_POST(self):
        if self.path != "/v1/chat/completions":
            return self.reply(404, {"error": "no such path"})
        if KEY is not None and self.headers.get("Authorization") != f"Bearer {KEY}":
            return self.reply(401, {"error": "bad key"})
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        user = body["messages"][-1]["content"]
        if "FLAKY" in user:
            with LOCK:
                FLAKY_SEEN[user] = FLAKY_SEEN.get(user, 0) + 1
                if FLAKY_SEEN[user] <= 2:
                    return self.reply(503, {"error": "busy"})
        if "SLOW" in user:
            time.sleep(2)
        text = "I cannot decide." if "GARBAGE" in user else verdict(user)
        self.reply(200, {"choices": [{"index": 0, "message": {"role": "assistant", "content": text}}], "model": body["model"]})

    def reply(self, status, value):
        data = json.dumps(value).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args):
        pass


server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
print(server.server_address[1], flush=True)
server.serve_forever()
