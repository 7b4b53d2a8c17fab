#!/usr/bin/env python3
"""rmkv-chat driven through a pseudo-terminal.

A conversation of two turns in one process (greedy) against the same two turns
split over two processes: the first saves the session with /save and quits, the
second loads it with /load and answers the second turn. The answers must be the
same bytes, and /size shows that the loaded session has read exactly the tokens
the saved one had (the memory really came back). Ctrl-C during a long answer stops the answer,
and the program goes on (/size answers).

usage: chat_pty.py RMKV_CLI RMKV_CHAT WORKDIR
"""
import fcntl
import os
import pty
import select
import shutil
import subprocess
import sys
import termios
import time

cli, chat, work = sys.argv[1:4]
shutil.rmtree(work, ignore_errors=True)
os.makedirs(work)
corpus = os.path.join(work, "corpus.txt")
with open(corpus, "w") as f:
    f.write("hello there, how are you today?\nthe quick brown fox jumps over the lazy dog\n" * 4)
tok = os.path.join(work, "tok.json")
model = os.path.join(work, "model.safetensors")
subprocess.run([cli, "tokenizer", "train", "-o", tok, "--vocab-size", "300", corpus], check=True,
               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
subprocess.run([cli, "create", '{"d_model":32,"n_layers":2,"n_heads":2,"memory_slots":4,"segment_len":8}', model,
                "--tokenizer", tok], check=True, stdout=subprocess.DEVNULL)


class Chat:
    def __init__(self, *extra):
        self.master, slave = pty.openpty()
        self.proc = subprocess.Popen([chat, model, "--temperature", "0", "--max_length", "12", "--ban", "<end>", *extra],
                                     stdin=slave, stdout=slave, stderr=slave, close_fds=True,
                                     preexec_fn=lambda: (os.setsid(), fcntl.ioctl(0, termios.TIOCSCTTY, 0)))
        os.close(slave)
        self.out = b""
        self.pos = 0  # output before pos has been matched already

    def read_until(self, marker, timeout=60):
        start = self.pos
        deadline = time.time() + timeout
        while marker not in self.out[start:]:
            if time.time() > deadline:
                raise SystemExit(f"timed out waiting for {marker!r}; output (end):\n{self.out[-2000:].decode(errors='replace')}")
            r, _, _ = select.select([self.master], [], [], 0.5)
            if r:
                try:
                    data = os.read(self.master, 65536)
                except OSError:
                    data = b""
                if not data and self.proc.poll() is not None:
                    raise SystemExit(f"rmkv-chat ended waiting for {marker!r}:\n{self.out[-2000:].decode(errors='replace')}")
                self.out += data
        self.pos = self.out.index(marker, start) + len(marker)
        return self.out[start:self.pos]

    def send(self, line):
        os.write(self.master, line.encode() + b"\r")

    def say(self, line):
        self.send(line)
        return self.read_until(b"you> ")

    def quit(self):
        self.send("/quit")
        deadline = time.time() + 30
        while self.proc.poll() is None and time.time() < deadline:
            r, _, _ = select.select([self.master], [], [], 0.2)
            if r:
                try:
                    self.out += os.read(self.master, 65536)
                except OSError:
                    break
        assert self.proc.wait(timeout=30) == 0, self.out.decode(errors="replace")
        os.close(self.master)


def transcript(path):
    with open(path, "rb") as f:
        return f.read()


t1, t2 = "hello there, how are you?", "the quick brown fox"
whole = os.path.join(work, "whole.txt")
split = os.path.join(work, "split.txt")
saved = os.path.join(work, "session.state")

c = Chat("--transcript", whole)
c.read_until(b"you> ")
c.say(t1)
c.say(t2)
c.quit()

c = Chat("--transcript", split)
c.read_until(b"you> ")
c.say(t1)
assert b"saved to" in c.say("/save " + saved)
size_saved = c.say("/size")
c.quit()
c = Chat("--transcript", split)
c.read_until(b"you> ")
assert b"0 tokens read" in c.say("/size")
assert b"loaded" in c.say("/load " + saved)
size_loaded = c.say("/size")
read = size_saved[size_saved.index(b"state: "):].split(b",")[1]
assert read in size_loaded and read != b" 0 tokens read", (size_saved, size_loaded)
out = c.say(t2)
assert b"rmkv> " in out
c.quit()

a, b = transcript(whole), transcript(split)
print(a.decode(errors="replace"))
assert a.count(b"[rmkv] ") == 2 and len(a) > 60, a
assert a == b, f"split run differs:\n{a!r}\n{b!r}"

# Ctrl-C stops a long answer, not the program.
c = Chat("--max_length", "100000000")
c.read_until(b"you> ")
c.send(t1)
c.read_until(b"rmkv> ")
time.sleep(0.5)
os.write(c.master, b"\x03")
c.read_until(b"[stopped]")
c.read_until(b"you> ")
assert b"bytes" in c.say("/size")
c.quit()
print("chat through a pty: saved and loaded sessions continue identically; Ctrl-C stops the answer")
