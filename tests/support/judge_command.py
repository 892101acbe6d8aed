"""A judge program for the judge tests (tests/judges.rs): reads one JSON
request a line and answers each with one JSON line, by the same rule as
judge_server.py (a critique names a "not sure", a revision drops it). A request whose prompt is EXIT makes it say so on
stderr and end without an answer."""

import json
import sys

for line in sys.stdin:
    request = json.loads(line)
    if request["prompt"] == "EXIT":
        print("asked to end", file=sys.stderr, flush=True)
        sys.exit(3)
    good = lambda answer: "not sure" not in answer
    if request["task"] == "critique":
        response = request["response"]
        answer = {
            "critique": f"{request['principle']}: " + ("it is not sure" if not good(response) else "nothing"),
            "revision": response.replace(" I am not sure.", ""),
        }
    elif request["task"] == "score":
        answer = {"score": 0.9 if good(request["response"]) else 0.2}
    else:
        a, b = (good(r) for r in request["responses"])
        answer = {"verdict": "a" if a and not b else "b" if b and not a else "tie"}
    print(json.dumps(answer), flush=True)
