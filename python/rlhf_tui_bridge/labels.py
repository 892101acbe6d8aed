"""Sample sets from what a trainer logs of its completions, and the
person's judgments of them written to the run's `prefs.jsonl` in TRL's
preference format (`prompt`, `chosen`, `rejected`), ready for the next
reward model or DPO round. Each judgment is on disk (flushed and synced)
before the workbench is told it is saved; an undo rewrites the file
without it, atomically."""

import json
import os
import re
import threading

PREFS = "prefs.jsonl"


def pieces(text):
    """The completion as the pair pane's tokens: words with the space before them."""
    return re.findall(r"\s*\S+|\s+", text) or [""]


class Groups:
    """The newest logged completions, by prompt, and the sets made from them."""

    def __init__(self):
        self.groups = []  # [(prompt, [(completion, reward)])]
        self.shown = set()  # prompts already sent
        self.sets = {}  # set id -> (prompt, [completion])
        self.next_id = 0

    def update(self, logs):
        prompts, completions = list(logs["prompt"]), list(logs["completion"])
        rewards = [0.0] * len(completions)
        for values in logs.get("rewards", {}).values():
            for i, r in enumerate(list(values)[: len(rewards)]):
                if r == r:  # a reward function may give NaN where it does not apply
                    rewards[i] += float(r)
        by_prompt = {}
        for p, c, r in zip(prompts, completions, rewards):
            by_prompt.setdefault(p, []).append((c, r))
        groups = [(p, g) for p, g in by_prompt.items() if len(g) >= 2]
        if groups and groups != self.groups:
            # A new generation: its prompts may be asked again.
            self.groups, self.shown = groups, set()

    def next_set(self, k, step, temperature):
        """A set of `k` completions of the newest prompt not yet shown (the
        highest and lowest rewarded first, the rest between), or None."""
        fresh = [g for g in self.groups if g[0] not in self.shown]
        if not fresh:
            return None
        prompt, group = fresh[-1]
        self.shown.add(prompt)
        ranked = sorted(group, key=lambda cr: cr[1], reverse=True)
        chosen = [ranked[0], ranked[-1]] + ranked[1:-1]
        chosen = chosen[: max(2, min(k, len(chosen)))]
        self.next_id += 1
        self.sets[self.next_id] = (prompt, [c for c, _ in chosen])
        responses = [
            {
                "tokens": pieces(c),
                "logprobs": [],
                "ref_logprobs": [],
                "reward": r,
                "judge": None,
                "temperature": temperature,
            }
            for c, r in chosen
        ]
        return {
            "Samples": {
                "id": self.next_id,
                "prompt": prompt,
                "asked": {"Text": prompt},
                "policy": f"step-{step}",
                "responses": responses,
                "judge": [],
            }
        }


def pairs(verdict, n):
    """(better, worse) response indices a verdict implies: a choice between
    two gives one pair; a ranking gives every pair it orders; a tie, both
    bad or a skip give none (TRL's format has no place for them)."""
    if "choice" in verdict:
        return {"left": [(0, 1)], "right": [(1, 0)]}.get(verdict["choice"], [])
    order = [i for i in verdict.get("ranking", []) if 0 <= i < n]
    return [(a, b) for i, a in enumerate(order) for b in order[i + 1 :]]


class Prefs:
    """The run's `prefs.jsonl`: one TRL preference row per line."""

    def __init__(self, run_dir):
        self.path = os.path.join(run_dir, PREFS)
        self.lock = threading.Lock()
        self.by_set = {}  # set id -> rows written for it

    def count(self):
        try:
            with open(self.path, encoding="utf-8") as f:
                return sum(1 for line in f if line.strip())
        except FileNotFoundError:
            return 0

    def record(self, set_id, prompt, completions, verdict):
        rows = [
            {"prompt": prompt, "chosen": completions[a], "rejected": completions[b]}
            for a, b in pairs(verdict, len(completions))
        ]
        with self.lock:
            with open(self.path, "a", encoding="utf-8") as f:
                for row in rows:
                    f.write(json.dumps(row) + "\n")
                f.flush()
                os.fsync(f.fileno())
            self.by_set[set_id] = rows
        return len(rows)

    def retract(self, set_id):
        """Removes the rows of `set_id` (the last of each, where a row
        repeats); the file is replaced whole."""
        with self.lock:
            rows = self.by_set.pop(set_id, [])
            if not rows:
                return 0
            with open(self.path, encoding="utf-8") as f:
                lines = f.read().splitlines()
            for row in rows:
                text = json.dumps(row)
                for i in range(len(lines) - 1, -1, -1):
                    if lines[i] == text:
                        del lines[i]
                        break
            tmp = self.path + ".tmp"
            with open(tmp, "w", encoding="utf-8") as f:
                f.write("".join(line + "\n" for line in lines))
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, self.path)
            return len(rows)
