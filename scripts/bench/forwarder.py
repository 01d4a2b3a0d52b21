# SPDX-License-Identifier: GPL-2.0-or-later
"""The harness's TCP forwarder between source and destination: a network
that the harness can break at a byte, or whenever it decides."""

import socket
import threading
import time


class Forwarder:
    """A TCP forwarder between source and destination: a broken network.

    Listens on 127.0.0.1 (an ephemeral port) and accepts any number of
    connections until it is closed or cut: a migration may open more than
    one to the same port (postcopy-preempt's preempt channel beside the
    main stream).  Each accepted connection is connected, in the order
    accepted, to the destination's port (on @dst_host, 127.0.0.1 unless
    told otherwise) and pumped both ways in two
    threads of its own; the byte counts are of all connections together.
    The first connection must come within @timeout seconds (else error).

    It caps nothing: the link's speed is the source's max-bandwidth (and
    max-postcopy-bandwidth), which QEMU accounts over all of its channels
    together (though it sends postcopy-preempt's requested pages without
    waiting for that budget).

    With @cut, once that many bytes from source to destination have
    passed, counted over all connections, it shuts down and closes every
    connection and the listening socket (the source's next writes fail,
    the destination reads the end of each stream): the network breaks at
    an exact byte of the stream (with one connection, as the byte-count
    cuts use it; with several, at the byte where their sum reaches @cut).
    cut_now() breaks it the same way whenever the harness decides.  After
    a cut a new connection is refused (the listening socket is closed;
    one accepted in the same instant is closed at once).  A connection
    that fails by itself (not cut, not closed) records the first error and
    is closed, alone; the others go on."""

    BUF = 1 << 20

    def __init__(self, dst_port, cut=None, timeout=60.0,
                 dst_host="127.0.0.1"):
        self.dst_port = dst_port
        self.dst_host = dst_host
        self.cut = cut
        self.timeout = timeout
        self.bytes = 0          # source -> destination, delivered
        self.bytes_in = 0       # source -> destination, received
        self.bytes_back = 0     # destination -> source
        self.connections = 0    # accepted and connected on
        self.t_first = self.t_cut = self.t_end = None
        self.cut_done = False
        self.error = None
        self._claimed = 0       # bytes a pump took on to send (<= cut)
        self._conns = []        # [source side, destination side] sockets
        self._active = 0
        self._closed = False
        self._lock = threading.Lock()
        self.lsock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.lsock.bind(("127.0.0.1", 0))
        self.lsock.listen(4)
        self.port = self.lsock.getsockname()[1]
        self._thr = threading.Thread(target=self._run, daemon=True,
                                     name="forwarder")
        self._thr.start()

    def _set_error(self, msg):
        with self._lock:
            if self.error is None and not self.cut_done and \
                    not self._closed:
                self.error = msg

    def _run(self):
        """Accept connections until closed or cut."""
        deadline = time.monotonic() + self.timeout
        while True:
            try:
                # short waits: a close() from another thread is noticed
                self.lsock.settimeout(0.2)
                a, _ = self.lsock.accept()
            except socket.timeout:
                if self._closed or self.cut_done:
                    return
                if not self.connections and time.monotonic() > deadline:
                    self._set_error("forwarder: timed out")
                    self._close_listener()
                    return
                continue
            except OSError as e:
                self._set_error("forwarder: %s" % e)
                return
            b = None
            try:
                a.settimeout(None)
                b = socket.create_connection((self.dst_host, self.dst_port),
                                             timeout=self.timeout)
                b.settimeout(None)
                for sk in (a, b):
                    sk.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            except OSError as e:
                self._set_error("forwarder: %s" % e)
                self._close_pair([a, b])
                continue
            with self._lock:
                refuse = self._closed or self.cut_done
                if not refuse:
                    pair = [a, b]
                    self._conns.append(pair)
                    self._active += 1
                    self.connections += 1
            if refuse:
                # accepted in the instant of a cut: the network is broken
                self._close_pair([a, b])
                return
            threading.Thread(target=self._serve, args=(pair,), daemon=True,
                             name="forwarder-%d" % self.connections).start()

    def _serve(self, pair):
        back = threading.Thread(target=self._pump_back, args=(pair,),
                                daemon=True, name="forwarder-back")
        back.start()
        self._pump(pair)
        back.join(timeout=5)
        with self._lock:
            self._active -= 1
            if not self._active:
                self.t_end = time.monotonic()

    def _pump(self, pair):
        a, b = pair
        buf = bytearray(self.BUF)
        view = memoryview(buf)
        try:
            while True:
                n = a.recv_into(buf)
                if not n:
                    self._shut(b, socket.SHUT_WR)
                    return
                with self._lock:
                    if self.cut_done:
                        return
                    if self.t_first is None:
                        self.t_first = time.monotonic()
                    self.bytes_in += n
                    k, last = n, False
                    if self.cut is not None:
                        k = min(n, self.cut - self._claimed)
                        last = k > 0 and self._claimed + k >= self.cut
                    self._claimed += k
                if k <= 0:
                    # another connection's pump reached the cut: it cuts
                    return
                b.sendall(view[:k], socket.MSG_NOSIGNAL)
                with self._lock:
                    self.bytes += k
                if last:
                    self._cut()
                    return
        except OSError as e:
            self._set_error("forwarder: %s" % e)
            self._close_pair(pair)

    def _cut(self):
        with self._lock:
            if self.cut_done:
                return False
            self.t_cut = time.monotonic()
            self.cut_done = True
        self.close()
        return True

    def cut_now(self):
        """Break every connection now, wherever the stream is (the harness
        decides when, e.g. at a postcopy switchover)."""
        if self._cut():
            self.cut = self.bytes

    def _pump_back(self, pair):
        a, b = pair
        try:
            while True:
                data = b.recv(65536)
                if not data:
                    self._shut(a, socket.SHUT_WR)
                    return
                with self._lock:
                    self.bytes_back += len(data)
                a.sendall(data, socket.MSG_NOSIGNAL)
        except OSError:
            pass

    @staticmethod
    def _shut(sk, how):
        try:
            sk.shutdown(how)
        except OSError:
            pass

    def _close_pair(self, pair):
        for sk in pair:
            if sk is not None:
                self._shut(sk, socket.SHUT_RDWR)
                try:
                    sk.close()
                except OSError:
                    pass

    def _close_listener(self):
        # shutdown wakes an accept() blocked in another thread (Linux)
        self._shut(self.lsock, socket.SHUT_RDWR)
        try:
            self.lsock.close()
        except OSError:
            pass

    def close(self):
        """Shut down and close every connection and stop listening; a
        connection attempted from now on is refused."""
        with self._lock:
            self._closed = True
            pairs = list(self._conns)
        for pair in pairs:
            self._close_pair(pair)
        self._close_listener()

    def stats(self, t0):
        """What went through, times relative to @t0 (host monotonic)."""
        rel = (lambda t: None if t is None else round(t - t0, 3))
        span = ((self.t_cut or self.t_end or time.monotonic()) -
                self.t_first) if self.t_first else None
        return {
            "cut_at": self.cut, "cut": self.cut_done,
            "bytes": self.bytes, "bytes_in": self.bytes_in,
            "bytes_back": self.bytes_back,
            "connections": self.connections,
            "first_byte_s": rel(self.t_first), "cut_s": rel(self.t_cut),
            # throughput it passed until the cut (or the end): a forwarder
            # that limited the migration would show here
            "mib_s": round(self.bytes / span / 1048576, 1)
            if span else None,
            "error": self.error,
        }
