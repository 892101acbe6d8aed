"""`WorkbenchCallback`: a transformers `TrainerCallback` that serves a
Hugging Face or TRL trainer to the rlhf-tui workbench. The main process
serves (see `server`); every logged metric goes to the charts and the
completions GRPO and RLOO log go to the pair pane. Steering waits for a
step boundary: there the main process decides, from the commands queued
since the last one, and broadcasts its decision to every rank, so all
ranks pause, resume, stop, checkpoint and change the learning rate, β or
temperature at the same step. While paused, the main process broadcasts
every 0.2 s, so the other ranks wait inside a collective that never times
out. Every change is in the run's `audit.jsonl` with its step, the rank
by rank values after it, and who made it. Labels are handled as they come
(`labels`), not at a boundary."""

import json
import os
import queue
import threading
import time

from transformers import TrainerCallback

from . import trainers
from .labels import Groups, Prefs
from .server import Server, kind

AUDIT = "audit.jsonl"
# How often the main process tells the waiting ranks, while paused.
TICK = 0.2
PARAMS = {"Beta": "beta", "LearningRate": "lr", "Temperature": "temperature"}
CONTROL_OF = {
    "Pause": "pause",
    "Resume": "pause",
    "StepOnce": "step",
    "Stop": "stop",
    "Checkpoint": "checkpoint",
    "Start": "start",
    "NewRound": "round",
    "StartEval": "eval",
    "EvalVerdict": "eval",
    "Label": "label",
    "Undo": "label",
    "RequestSamples": "samples",
}
SET_CONTROL = {"Beta": "beta", "LearningRate": "learning_rate", "Temperature": "temperature",
               "KlMode": "kl_mode", "GroupSize": "group_size"}


def _broadcast(value):
    from accelerate.utils import broadcast_object_list

    box = [value]
    broadcast_object_list(box, from_process=0)
    return box[0]


def _gather(value):
    from accelerate.utils import gather_object

    return gather_object([value])


def _check(param, value, trainer):
    """Why `value` cannot be used for `param`, or None."""
    if not isinstance(value, (int, float)) or value != value:
        return "a number is needed"
    if param == "Beta":
        if value < 0:
            return "β must be a number ≥ 0"
        if value == 0 and trainers.class_name(trainer) in ("GRPOTrainer", "RLOOTrainer"):
            return "β 0 stops the reference's log-probabilities being computed mid-batch: give a small β instead"
    if param == "LearningRate" and not 0 < value <= 1:
        return "the learning rate must be in (0, 1]"
    if param == "Temperature" and not 0 < value <= 10:
        return "the temperature must be in (0, 10]"
    return None


class WorkbenchCallback(TrainerCallback):
    """Serves `trainer` as the run `runs_dir/run`: `rlhf-tui attach --run
    RUN` (or `rlhf-tui attach HOST:PORT --run RUN` with `listen`)."""

    def __init__(self, trainer, run, runs_dir="runs", listen=None):
        self.trainer = trainer
        self.run_dir = os.path.join(runs_dir, run)
        self.listen = listen
        self.stage = trainers.stage_of(trainer)
        self.name = trainers.class_name(trainer)
        self.server = None
        self.paused = False
        self.pause_next = False
        self.wait_in_log = False
        self.stopping = False
        self.saved = None
        # On the main process: steering commands waiting for a boundary.
        self.steering = queue.Queue()
        # The sets, made on the trainer's thread (at a log) and the
        # commands' (on `r`), and read by both.
        self.groups = Groups()
        self.groups_lock = threading.Lock()
        self.prefs = None
        self.audit = None
        self.lock = threading.Lock()
        self.boundary_at = 0.0

    # -- the main process's side -----------------------------------------

    @property
    def main(self):
        return self.trainer.accelerator.is_main_process

    def _record(self, step, event, **details):
        line = {"time": round(time.time(), 3), "stage": self.stage, "step": step, "event": event, **details}
        with self.lock:
            self.audit.write(json.dumps(line) + "\n")
            self.audit.flush()
            os.fsync(self.audit.fileno())

    def _publish_stage(self, state, step=None):
        st = self.trainer.state
        self.server.publish({"Stage": {"stage": self.stage, "state": state,
                                       "step": st.global_step if step is None else step, "total": st.max_steps}})

    def _serve(self, state):
        os.makedirs(self.run_dir, exist_ok=True)
        self.server = Server(self.run_dir, self.listen)
        self.prefs = Prefs(self.run_dir)
        self.audit = open(os.path.join(self.run_dir, AUDIT), "a", encoding="utf-8")
        t = self.trainer
        ranks = t.accelerator.num_processes
        self.controls = trainers.controls(t)
        k = trainers.group_size(t)
        # Before `Ready`, which the workbench answers with a sample request
        # unless the trainer is known not to take one.
        self.server.publish({"External": {"trainer": self.name, "controls": self.controls}})
        self.server.publish({"Ready": {
            "device": f"TRL {self.name} · {ranks} process{'es' if ranks > 1 else ''} on {t.accelerator.device}",
            "run": os.path.basename(os.path.abspath(self.run_dir)),
            "base": str(getattr(t.model.config, "_name_or_path", "") or "model"),
            "stages": [[s, "Running" if s == self.stage else "NotStarted"] for s in trainers.ALL_STAGES],
            "beta": trainers.beta(t) or 0.0,
            "lr": trainers.peak_lr(t),
            "temperature": trainers.temperature(t) or 1.0,
            "kl_mode": "fixed",
            "rank_k": min(k or 2, 4),
            "judged": self.prefs.count(),
        }})
        self.server.publish({"Live": {"beta": trainers.beta(t) or 0.0, "kl_mode": "fixed", "group_size": k}})
        self._publish_stage("Running", state.global_step)
        self._record(state.global_step, "start", trainer=self.name, processes=ranks, controls=self.controls)
        threading.Thread(target=self._dispatch, name="workbench-commands", daemon=True).start()
        where = self.server.tcp_address or self.server.socket_path
        print(f"rlhf-tui: serving {self.name} as run {self.server.run} on {where}; "
              f"attach with: rlhf-tui attach --run {self.server.run}", flush=True)

    def _dispatch(self):
        """Labels now; steering to the next boundary; what the trainer does
        not take, answered in words."""
        while True:
            by, command = self.server.commands.get()
            if command is None:
                return
            try:
                self._take(by, command)
            except (KeyError, TypeError, ValueError, AttributeError, StopIteration):
                # A frame that is JSON but no command this bridge reads: said,
                # and the commands after it still taken.
                self.server.publish({"Error": f"a command the bridge cannot read: {json.dumps(command)[:200]}"})

    def _take(self, by, command):
        k = kind(command)
        control = SET_CONTROL.get(next(iter(command["Set"]))) if k == "Set" else CONTROL_OF.get(k)
        if control not in self.controls:
            what = control.replace("_", " ") if control else k
            self.server.publish({"Note": f"{self.name} does not take {what} from the workbench"})
            return
        if k == "Set":
            param, value = next(iter(command["Set"].items()))
            why = _check(param, value, self.trainer)
            if why:
                self.server.publish({"Error": why})
                return
        if k in ("Label", "Undo", "RequestSamples"):
            self._label(by, k, command)
        else:
            self.steering.put((by, command, time.time()))

    def _label(self, by, k, command):
        step = self.trainer.state.global_step
        if k == "RequestSamples":
            return self._send_set(command["RequestSamples"]["k"])
        if k == "Undo":
            set_id = command["Undo"]["set"]
            removed = self.prefs.retract(set_id)
            self._record(step, "undo", set=set_id, rows=removed, by=by)
            return self.server.publish({"Retracted": {"set": set_id}})
        label = command["Label"]
        with self.groups_lock:
            found = self.groups.sets.get(label["set"])
        if found is None:
            return self.server.publish({"Error": f"no sample set {label['set']} to label"})
        prompt, completions = found
        rows = self.prefs.record(label["set"], prompt, completions, label["verdict"])
        self._record(step, "label", set=label["set"], verdict=label["verdict"],
                     criterion=label.get("criterion"), rows=rows, by=by)
        self.server.publish({"LabelSaved": {"set": label["set"], "verdict": label["verdict"]}})

    def _send_set(self, k=2):
        t = self.trainer
        with self.groups_lock:
            sample = self.groups.next_set(k, t.state.global_step, trainers.temperature(t) or 1.0)
        # Nothing new to show: the next logged generation brings a set.
        if sample is not None:
            self.server.publish(sample)

    def _drain(self, block):
        """The steering commands queued (waiting up to a tick for one when `block`)."""
        actions = []
        try:
            if block:
                actions.append(self.steering.get(timeout=TICK))
            while True:
                actions.append(self.steering.get_nowait())
        except queue.Empty:
            pass
        return actions

    # -- every rank ------------------------------------------------------

    def _exchange(self, block):
        return _broadcast(self._drain(block) if self.main else None)

    def _apply(self, actions, state, control):
        """Carries out the main process's decision on this rank."""
        if self.pause_next:
            self.pause_next, actions = False, [(None, "Pause", self.boundary_at)] + actions
        for by, command, received in actions:
            k = kind(command)
            if k == "Pause" and not self.paused:
                self.paused = True
                self._paused(state, by, received)
            elif k == "Resume" and self.paused:
                self.paused = False
                if self.main:
                    self._record(state.global_step, "resume", by=by)
                    self._publish_stage("Running")
            elif k == "StepOnce" and self.paused:
                self.paused, self.pause_next = False, True
                if self.main:
                    self._record(state.global_step, "step_once", by=by)
                    self._publish_stage("Running")
            elif k in ("Stop", "Checkpoint"):
                control.should_save = True
                if k == "Stop":
                    control.should_training_stop = True
                    self.stopping, self.paused = True, False
                if self.main:
                    self._record(state.global_step, k.lower(), by=by)
            elif k == "Set":
                self._set(command["Set"], state, by)

    def _paused(self, state, by, received):
        """Every rank's step and how long after its boundary it paused."""
        me = {"rank": self.trainer.accelerator.process_index, "step": state.global_step,
              "after_boundary_ms": round((time.time() - self.boundary_at) * 1000, 3)}
        ranks = _gather(me)
        if self.main:
            self._record(state.global_step, "pause", by=by, ranks=ranks,
                         after_request_ms=round((self.boundary_at - received) * 1000, 3))
            self._publish_stage("Paused")

    def _set(self, change, state, by):
        param, value = next(iter(change.items()))
        t = self.trainer
        old, set_ = {"Beta": (trainers.beta, trainers.set_beta),
                     "LearningRate": (trainers.peak_lr, trainers.set_lr),
                     "Temperature": (trainers.temperature, trainers.set_temperature)}[param]
        before = old(t)
        now = set_(t, float(value))
        ranks = _gather({"rank": t.accelerator.process_index, "value": now})
        if self.main:
            self._record(state.global_step, "set", param=PARAMS[param], old=before, new=float(value),
                         ranks=ranks, by=by)
            self.server.publish({"ParamChanged": {"param": {param: float(value)}, "old": before,
                                                  "step": state.global_step}})

    def _boundary(self, state, control, can_wait):
        self.boundary_at = time.time()
        self._apply(self._exchange(False), state, control)
        if self.paused and can_wait:
            self._wait(state, control)
        self.wait_in_log = self.paused

    def _wait(self, state, control):
        while self.paused and not self.stopping:
            self._apply(self._exchange(True), state, control)
        self.wait_in_log = False

    # -- the trainer's hooks ---------------------------------------------

    def on_train_begin(self, args, state, control, **kwargs):
        if self.main:
            self._serve(state)

    def on_step_end(self, args, state, control, **kwargs):
        if self.main:
            self._publish_stage("Paused" if self.paused else "Running")
        # A step that logs pauses after its log, so the charts have it.
        self._boundary(state, control, can_wait=not control.should_log)

    def on_log(self, args, state, control, logs=None, **kwargs):
        if self.main and logs:
            values = [[k, float(v)] for k, v in logs.items()
                      if isinstance(v, (int, float)) and not isinstance(v, bool)]
            self.server.publish({"Metrics": {"stage": self.stage, "step": state.global_step, "values": values}})
            if trainers.samples_logged(self.trainer):
                with self.groups_lock:
                    self.groups.update(self.trainer._logs)
                self._send_set()
        if self.wait_in_log:
            self._wait(state, control)

    def on_save(self, args, state, control, **kwargs):
        self.saved = os.path.join(args.output_dir, f"checkpoint-{state.global_step}")
        if self.main:
            self.server.publish({"Checkpoint": {"stage": self.stage, "step": state.global_step, "path": self.saved}})
            self._record(state.global_step, "checkpoint_written", path=self.saved)

    def on_train_end(self, args, state, control, **kwargs):
        if not self.main:
            return
        where = self.saved or args.output_dir
        final = {"Stopped" if self.stopping else "Done": {"checkpoint": where}}
        self._publish_stage(final)
        self._record(state.global_step, "end", stopped=self.stopping, checkpoint=where)
        self.server.commands.put((None, None))
        self.server.close()
        self.audit.close()
