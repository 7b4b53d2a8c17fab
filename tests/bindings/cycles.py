"""Create/free cycles of every kind of object from Python; run under valgrind by
valgrind_cycles.py (short: valgrind runs the library about 50 times slower)."""
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "bindings", "python",
                                "tests"))
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "bindings", "python"))
import rmkv
from conftest import CONFIG, TEXTS
tok = rmkv.Tokenizer.train_from_texts(TEXTS, vocab_size=300)
for i in range(20):
    with rmkv.Model.create(CONFIG, tok, seed=i) as m, m.session() as s, s.clone() as c:
        s.step(tok.encode(TEXTS[0]))
        c.load_state(s.save_state())
        with m.tokenizer.stream() as ts:
            ts.feed(1)
        with m.trainer() as t:
            t.step([[1, 2, 3, 4]], [[2, 3, 4, 5]])
    try:
        rmkv.Model.from_bytes(b"garbage!")
    except rmkv.FormatError:
        pass
tok.close()
