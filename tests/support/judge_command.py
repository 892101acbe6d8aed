"""A judge program for the judge tests (tests/judges.rs, tests/own_data.rs):
reads one JSON request a line and answers each with one JSON line, by the
same rule as judge_server.py (a critique names a "not sure", a revision
drops it). Given `--facts FILE` (TRL conversational demonstrations), it
knows the answers there, as a model judge knows facts: a revision of a
"not sure" to a question it knows states the answer instead. A request
whose prompt is EXIT makes it say so on stderr and end without an answer."""

import json
import re
import sys

# "The banana is yellow." for each thing a demonstration answers.
facts = {}
if "--facts" in sys.argv:
    with open(sys.argv[sys.argv.index("--facts") + 1]) as lines:
        for line in lines:
            for turn in json.loads(line)["messages"]:
                match = re.fullmatch(r"The (\w+) is \w+\.", turn["content"])
                if turn["role"] == "assistant" and match:
                    facts[match.group(1)] = turn["content"]


def revised(prompt, response):
    """The response without its "not sure", or with the fact in its place."""
    known = [facts[w] for w in re.findall(r"\w+", prompt) if w in facts]
    if "I am not sure." in response and known:
        return response.replace("I am not sure.", known[-1])
    return response.replace(" I am not sure.", "")


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
            "revision": revised(request["prompt"], response),
        }
    elif request["task"] == "score":
        answer = {"score": 0.9 if good(request["response"]) else 0.2}
    else:
        a, b = (good(r) for r in request["responses"])
        answer = {"verdict": "a" if a and not b else "b" if b and not a else "tie"}
    print(json.dumps(answer), flush=True)
