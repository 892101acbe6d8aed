"""The trainer's end of the workbench protocol, for a trainer that is not
rlhf-tui's own: the run's Unix socket (`trainer.sock`, 0600) and, when
asked, a TCP port that wants the run's token (`trainer.token`, 0600, new
at every start). Every event goes to every attached workbench and into a
replay a late one is told first; commands from any of them queue up, with
who sent them, for the trainer to take at its next step boundary. A frame
that is malformed, oversized, from another protocol version or without
the token closes that connection, with the reason in `serve.log`; the
trainer goes on."""

import json
import os
import queue
import socket
import threading
import time

from . import frames

SOCKET = "trainer.sock"
TOKEN = "trainer.token"
LOG = "serve.log"
# How long a new connection has to say hello.
HELLO_WITHIN = 5.0
# How long closing waits for a workbench to take the frames still queued for it.
FLUSH_WITHIN = 10.0
# Metrics events a late workbench is told (older ones thinned, as rlhf-tui's replay does).
MAX_METRICS = 20_000
# Events of which only the newest matters to a workbench that attaches late.
NEWEST_ONLY = {"Ready", "External", "Live", "Round", "Samples", "Agreement", "Throughput", "Calibration"}
PASSING = {"Note", "Warning", "Error", "Checkpoint", "ShutDown"}


def kind(event):
    return event if isinstance(event, str) else next(iter(event))


class Replay:
    def __init__(self):
        self.events = []
        self.metrics = 0

    def push(self, event):
        k = kind(event)
        if k in PASSING:
            return
        if k in NEWEST_ONLY:
            self.events = [e for e in self.events if kind(e) != k]
        elif k == "Stage":
            stage = event["Stage"]["stage"]
            self.events = [e for e in self.events if not (kind(e) == "Stage" and e["Stage"]["stage"] == stage)]
        elif k == "Metrics":
            self.metrics += 1
            if self.metrics > MAX_METRICS:
                self._thin()
        self.events.append(event)

    def _thin(self):
        """Drops every other metrics event of the older half."""
        half, seen, kept = self.metrics // 2, 0, []
        for e in self.events:
            if kind(e) == "Metrics" and seen < half:
                seen += 1
                if seen % 2:
                    self.metrics -= 1
                    continue
            kept.append(e)
        self.events = kept


class Server:
    """Serves the run in `run_dir`; `commands` yields (sender, command)."""

    def __init__(self, run_dir, listen=None):
        self.run_dir = run_dir
        self.run = os.path.basename(os.path.abspath(run_dir))
        os.makedirs(run_dir, exist_ok=True)
        self.commands = queue.Queue()
        self._lock = threading.Lock()
        self._replay = Replay()
        self._clients = {}
        self._next_id = 0
        self._closed = False
        self._log = open(os.path.join(run_dir, LOG), "a", encoding="utf-8")
        self._listeners = []
        self.socket_path = os.path.join(run_dir, SOCKET)
        self._listen_unix()
        self.tcp_address = None
        if listen:
            self._listen_tcp(listen)

    # -- listening -------------------------------------------------------

    def _listen_unix(self):
        path = self.socket_path
        if os.path.exists(path):
            probe = socket.socket(socket.AF_UNIX)
            try:
                probe.connect(path)
                raise RuntimeError(f"{path}: a trainer already serves this run; attach to it")
            except (ConnectionRefusedError, FileNotFoundError):
                os.remove(path)
            finally:
                probe.close()
        sock = socket.socket(socket.AF_UNIX)
        old = os.umask(0o177)
        try:
            sock.bind(path)
        finally:
            os.umask(old)
        os.chmod(path, 0o600)
        sock.listen()
        self._listeners.append(sock)
        self._accept_in_thread(sock, None, "unix")

    def _listen_tcp(self, listen):
        host, _, port = listen.rpartition(":")
        token_path = os.path.join(self.run_dir, TOKEN)
        token = frames.new_token()
        if os.path.exists(token_path):
            os.remove(token_path)
        fd = os.open(token_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(token)
            f.flush()
            os.fsync(f.fileno())
        sock = socket.create_server((host or "127.0.0.1", int(port)))
        self.tcp_address = "%s:%d" % sock.getsockname()[:2]
        self._listeners.append(sock)
        self._accept_in_thread(sock, token, "tcp")

    def _accept_in_thread(self, listener, token, name):
        def accept():
            while not self._closed:
                try:
                    conn, peer = listener.accept()
                except OSError:
                    if self._closed:
                        return
                    time.sleep(0.1)
                    continue
                peer = peer if isinstance(peer, str) and peer else ("unix socket" if name == "unix" else "%s:%d" % peer[:2])
                threading.Thread(target=self._connection, args=(conn, peer, token), daemon=True).start()

        threading.Thread(target=accept, name=f"accept-{name}", daemon=True).start()

    # -- connections -----------------------------------------------------

    def note(self, peer, what, reason=""):
        line = {"time": round(time.time(), 3), "peer": peer, "event": what, "reason": reason}
        with self._lock:
            # A connection may end after the server has closed.
            if not self._log.closed:
                self._log.write(json.dumps(line) + "\n")
                self._log.flush()

    def _refuse(self, conn, peer, reason):
        self.note(peer, "refused", reason)
        try:
            conn.sendall(frames.encode({"Refused": {"reason": reason}}))
        except OSError:
            pass
        conn.close()

    def _connection(self, conn, peer, token):
        conn.settimeout(HELLO_WITHIN)
        try:
            hello = frames.read(conn)
        except (frames.FrameError, OSError) as e:
            return self._refuse(conn, peer, f"no hello: {e}")
        reason = frames.check_hello(hello, token)
        if reason:
            return self._refuse(conn, peer, reason)
        name = hello["name"]
        conn.settimeout(None)
        outbox = queue.Queue()
        sent = {"frames": 0, "bytes": 0, "largest": 0}

        def write():
            while True:
                event = outbox.get()
                if event is None:
                    break
                try:
                    frame = frames.encode(event)
                    conn.sendall(frame)
                except (OSError, frames.FrameError):
                    break
                sent["frames"] += 1
                sent["bytes"] += len(frame)
                sent["largest"] = max(sent["largest"], len(frame))
            try:
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

        writer = threading.Thread(target=write, daemon=True)
        with self._lock:
            if self._closed:
                return conn.close()
            try:
                conn.sendall(frames.encode({"Accepted": {"version": frames.PROTOCOL_VERSION, "run": self.run}}))
            except OSError:
                return conn.close()
            for event in self._replay.events:
                outbox.put(event)
            self._next_id += 1
            client = self._next_id
            self._clients[client] = (outbox, writer)
            writer.start()
        self.note(peer, f"{name} attached")
        why = ""
        while True:
            try:
                command = frames.read(conn)
            except frames.Closed:
                break
            except (frames.FrameError, OSError) as e:
                why = str(e)
                break
            if command == "Detach" or kind(command) == "Shutdown":
                # The trainer outlives the workbench: a quit detaches.
                break
            if kind(command) == "Client":
                continue
            self.commands.put((name, command))
        with self._lock:
            self._clients.pop(client, None)
        outbox.put(None)
        writer.join(timeout=5)
        conn.close()
        what = "closed" if why else "detached"
        self.note(peer, f"{name} {what} ({sent['frames']} frames sent, {sent['bytes']} bytes, "
                        f"the largest {sent['largest']})", why)

    # -- events ----------------------------------------------------------

    def publish(self, event):
        """Sends `event` to every attached workbench and keeps it for late ones."""
        with self._lock:
            self._replay.push(event)
            for outbox, _ in self._clients.values():
                outbox.put(event)

    def close(self):
        """Tells the workbenches the trainer has ended and stops serving,
        once what they were sent is out: the writers are daemon threads,
        and the trainer's process ends soon after (a workbench that lost
        the last frames would take a clean stop for a failure)."""
        self.publish("ShutDown")
        with self._lock:
            self._closed = True
            writers = []
            for outbox, writer in self._clients.values():
                outbox.put(None)
                writers.append(writer)
            self._clients.clear()
        for writer in writers:
            writer.join(timeout=FLUSH_WITHIN)
        for sock in self._listeners:
            try:
                sock.close()
            except OSError:
                pass
        if os.path.exists(self.socket_path):
            os.remove(self.socket_path)
        with self._lock:
            self._log.close()
