#!/usr/bin/env python3
"""Builds the ~100 MB English benchmark corpus from text that Debian packages
install: /usr/share/common-licenses (package base-files), then every text file
under /usr/share/doc (copyright files, changelogs, READMEs; .gz decompressed),
in sorted order. Binary files and files that are not UTF-8 are skipped. When the
installed packages hold less text than the target, the text is repeated.

    make_corpus.py OUT.txt [MEGABYTES=100]
"""
import gzip
import os
import sys

SKIP = ('.html', '.htm', '.js', '.css', '.png', '.svg', '.jpg', '.gif', '.pdf', '.bz2', '.xz', '.zip', '.woff', '.ico')


def files():
    for root in ('/usr/share/common-licenses', '/usr/share/doc'):
        found = []
        for d, _, names in os.walk(root):
            for n in names:
                p = os.path.join(d, n)
                if os.path.isfile(p) and not os.path.islink(p) and not n.endswith(SKIP):
                    found.append(p)
        yield from sorted(found)


def text_of(path):
    try:
        data = gzip.open(path).read() if path.endswith('.gz') else open(path, 'rb').read()
        if b'\0' in data:
            return None
        data.decode('utf-8')
        return data
    except Exception:
        return None


def main():
    out, target = sys.argv[1], int(float(sys.argv[2]) * 1e6) if len(sys.argv) > 2 else 100_000_000
    parts, size = [], 0
    for p in files():
        t = text_of(p)
        if t:
            if not t.endswith(b'\n'):
                t += b'\n'
            parts.append(t)
            size += len(t)
            if size >= target:
                break
    if not parts:
        sys.exit('no text found under /usr/share/doc')
    body = b''.join(parts)
    data = (body * (target // len(body) + 1))[:target]
    data = data[: data.rfind(b'\n') + 1]
    with open(out, 'wb') as f:
        f.write(data)
    print(f'{out}: {len(data)} bytes from {len(parts)} files ({len(body)} distinct bytes)')


if __name__ == '__main__':
    main()
