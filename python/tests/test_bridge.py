"""The bridge's parts on their own: frames and the server's refusals (the
same checks, in the same words, as rlhf-tui's own server), sets and
preference rows, and the learning rate set through a real torch
optimizer and scheduler."""

import json
import os
import socket
import struct
import tempfile
import time
import unittest

from rlhf_tui_bridge import frames, labels
from rlhf_tui_bridge.server import Server, Replay


def hello(version=frames.PROTOCOL_VERSION, name="ann", token=None):
    return {"version": version, "name": name, "token": token}


class ServerTest(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory()
        self.run_dir = os.path.join(self.tmp.name, "r")
        self.server = Server(self.run_dir, listen="127.0.0.1:0")
        with open(os.path.join(self.run_dir, "trainer.token")) as f:
            self.token = f.read()
        self.host, port = self.server.tcp_address.split(":")
        self.port = int(port)

    def tearDown(self):
        self.server.close()
        self.tmp.cleanup()

    def tcp(self):
        sock = socket.create_connection((self.host, self.port), timeout=10)
        return sock

    def welcome_after(self, raw):
        sock = self.tcp()
        sock.sendall(raw)
        try:
            return frames.read(sock)
        except frames.FrameError:
            return None
        finally:
            sock.close()

    def test_bad_frames_are_refused_with_reasons_and_the_server_serves_on(self):
        self.assertEqual(os.stat(self.server.socket_path).st_mode & 0o777, 0o600)
        self.assertEqual(os.stat(os.path.join(self.run_dir, "trainer.token")).st_mode & 0o777, 0o600)
        cases = [
            struct.pack(">I", frames.MAX_FRAME + 1),  # oversized
            struct.pack(">I", 10) + b"abc",  # truncated
            struct.pack(">I", 3) + b"{x}",  # malformed
            frames.encode(hello(version=1, token=self.token)),  # another version
            frames.encode(hello(token="0" * 32)),  # wrong token
            frames.encode(hello()),  # no token over TCP
            frames.encode(hello(name="", token=self.token)),  # no name
        ]
        for raw in cases:
            sock = self.tcp()
            sock.sendall(raw)
            if raw == cases[1]:
                sock.shutdown(socket.SHUT_WR)
            welcome = frames.read(sock)
            sock.close()
            self.assertIn("Refused", welcome, raw)
        with open(os.path.join(self.run_dir, "serve.log")) as f:
            reasons = [json.loads(line)["reason"] for line in f]
        for words in ["over the", "ended inside a frame", "not a message", "protocol version 1",
                      "wrong or missing token", "a name of 1 to 64"]:
            self.assertTrue(any(words in r for r in reasons), (words, reasons))

        # A real hello is accepted and told what happened so far.
        self.server.publish({"Metrics": {"stage": "grpo", "step": 1, "values": [["loss", 0.5]]}})
        self.server.publish({"Note": "passing"})
        sock = self.tcp()
        sock.sendall(frames.encode(hello(token=self.token)))
        self.assertEqual(frames.read(sock), {"Accepted": {"version": frames.PROTOCOL_VERSION, "run": "r"}})
        self.assertEqual(frames.read(sock)["Metrics"]["step"], 1)
        sock.sendall(frames.encode("Pause"))
        self.assertEqual(self.server.commands.get(timeout=5), ("ann", "Pause"))
        # Over the Unix socket no token is asked.
        unix = socket.socket(socket.AF_UNIX)
        unix.connect(self.server.socket_path)
        unix.sendall(frames.encode(hello(name="bob")))
        self.assertIn("Accepted", frames.read(unix))
        self.assertEqual(frames.read(unix)["Metrics"]["step"], 1)
        unix.sendall(frames.encode({"Set": {"Beta": 0.2}}))
        self.assertEqual(self.server.commands.get(timeout=5), ("bob", {"Set": {"Beta": 0.2}}))
        # Both hear what follows.
        self.server.publish({"Stage": {"stage": "grpo", "state": "Paused", "step": 1, "total": 9}})
        for s in (sock, unix):
            self.assertEqual(frames.read(s)["Stage"]["state"], "Paused")
        sock.close()
        unix.close()


class ReplayTest(unittest.TestCase):
    def test_state_once_messages_never(self):
        replay = Replay()
        for step in (1, 2):
            replay.push({"Stage": {"stage": "dpo", "state": "Running", "step": step, "total": 9}})
            replay.push({"Live": {"beta": 0.1, "kl_mode": "fixed", "group_size": None}})
            replay.push({"Note": "n"})
        self.assertEqual([next(iter(e)) for e in replay.events], ["Stage", "Live"])
        self.assertEqual(replay.events[0]["Stage"]["step"], 2)


class LabelsTest(unittest.TestCase):
    def test_a_set_is_the_newest_prompt_best_and_worst_first(self):
        groups = labels.Groups()
        logs = {"prompt": ["a", "a", "a", "b", "b"], "completion": ["x", "y", "z", "u", "v"],
                "rewards": {"f": [0.1, 0.9, 0.5, 0.0, 1.0], "g": [0.0, 0.0, 0.0, float("nan"), 0.0]}}
        groups.update(logs)
        first = groups.next_set(2, 7, 1.0)["Samples"]
        self.assertEqual(first["prompt"], "b")
        self.assertEqual([r["reward"] for r in first["responses"]], [1.0, 0.0])
        self.assertEqual(first["policy"], "step-7")
        second = groups.next_set(3, 7, 1.0)["Samples"]
        self.assertEqual(["".join(r["tokens"]) for r in second["responses"]], ["y", "x", "z"])
        self.assertIsNone(groups.next_set(2, 7, 1.0))
        # A new generation may bring the same prompts again.
        logs["completion"] = ["p", "q", "r", "s", "t"]
        groups.update(logs)
        self.assertIsNotNone(groups.next_set(2, 8, 1.0))

    def test_verdicts_become_trl_rows_and_undo_removes_them(self):
        self.assertEqual(labels.pairs({"choice": "right"}, 2), [(1, 0)])
        self.assertEqual(labels.pairs({"choice": "tie"}, 2), [])
        self.assertEqual(labels.pairs({"ranking": [2, 0, 1]}, 3), [(2, 0), (2, 1), (0, 1)])
        with tempfile.TemporaryDirectory() as tmp:
            prefs = labels.Prefs(tmp)
            self.assertEqual(prefs.record(1, "p", ["a", "b"], {"choice": "left"}), 1)
            self.assertEqual(prefs.record(2, "q", ["c", "d", "e"], {"ranking": [1, 2, 0]}), 3)
            self.assertEqual(prefs.count(), 4)
            self.assertEqual(prefs.retract(2), 3)
            with open(prefs.path) as f:
                rows = [json.loads(line) for line in f]
            self.assertEqual(rows, [{"prompt": "p", "chosen": "a", "rejected": "b"}])


class LearningRateTest(unittest.TestCase):
    def test_the_schedule_is_scaled_and_goes_on_from_the_new_peak(self):
        import torch

        from rlhf_tui_bridge import trainers

        class Fake:  # what `set_lr` reads of a Trainer: its optimizer and scheduler
            pass

        t = Fake()
        t.optimizer = torch.optim.AdamW([torch.nn.Parameter(torch.zeros(2))], lr=1e-4)
        # Linear decay over 10 steps.
        t.lr_scheduler = torch.optim.lr_scheduler.LambdaLR(t.optimizer, lambda s: 1 - s / 10)
        for _ in range(4):
            t.optimizer.step()
            t.lr_scheduler.step()
        self.assertAlmostEqual(trainers.current_lr(t), 6e-5)
        self.assertAlmostEqual(trainers.set_lr(t, 2e-4), 1.2e-4)
        self.assertAlmostEqual(trainers.peak_lr(t), 2e-4)
        self.assertAlmostEqual(t.lr_scheduler.get_last_lr()[0], 1.2e-4)
        t.optimizer.step()
        t.lr_scheduler.step()
        # Step 5 of the schedule at the new peak: 2e-4 · 0.5.
        self.assertAlmostEqual(trainers.current_lr(t), 1e-4)



class DispatchTest(unittest.TestCase):
    def test_a_command_it_cannot_read_is_answered_and_the_next_still_taken(self):
        import queue
        import threading

        from rlhf_tui_bridge.callback import WorkbenchCallback

        with tempfile.TemporaryDirectory() as tmp:
            cb = object.__new__(WorkbenchCallback)  # only what dispatching reads
            cb.server = Server(os.path.join(tmp, "r"))
            cb.controls, cb.name, cb.steering = ["pause", "beta"], "DPOTrainer", queue.Queue()
            thread = threading.Thread(target=cb._dispatch, daemon=True)
            thread.start()
            for bad in ({"Set": 3}, {"Set": {}}, {"Label": {}}):
                cb.server.commands.put(("ann", bad))
            cb.server.commands.put(("ann", "Pause"))
            self.assertEqual(cb.steering.get(timeout=5)[:2], ("ann", "Pause"))
            cb.server.commands.put((None, None))
            thread.join(5)
            cb.server.close()
        self.assertFalse(thread.is_alive())


# A trainer that serves, waits for one workbench, sends it more than the
# socket holds, closes and ends its process at once.
TRAINER = """
import sys, time
from rlhf_tui_bridge.server import Server
server = Server(sys.argv[1])
print(server.socket_path, flush=True)
while not server._clients:
    time.sleep(0.01)
for step in range(200):
    server.publish({"Metrics": {"stage": "grpo", "step": step, "values": [["x" * 20000, 0.5]]}})
server.close()
"""


class ClosingTest(unittest.TestCase):
    def test_a_workbench_gets_every_frame_of_a_trainer_that_ends_at_once(self):
        import subprocess
        import sys

        with tempfile.TemporaryDirectory() as tmp:
            package = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
            trainer = subprocess.Popen([sys.executable, "-c", TRAINER, os.path.join(tmp, "r")],
                                       stdout=subprocess.PIPE, text=True,
                                       env={**os.environ, "PYTHONPATH": package})
            path = trainer.stdout.readline().strip()
            sock = socket.socket(socket.AF_UNIX)
            sock.settimeout(10)
            sock.connect(path)
            sock.sendall(frames.encode(hello()))
            self.assertIn("Accepted", frames.read(sock))
            # The trainer is past its last publish before this reads on.
            time.sleep(0.5)
            got = []
            while True:
                try:
                    got.append(frames.read(sock))
                except frames.Closed:
                    break
            sock.close()
            self.assertEqual(trainer.wait(10), 0)
        steps = [e["Metrics"]["step"] for e in got if "Metrics" in e]
        self.assertEqual(steps, list(range(200)))
        self.assertEqual(got[-1], "ShutDown")


if __name__ == "__main__":
    unittest.main()
