#!/usr/bin/env python3
"""The MIME tree of messages as Python's email package sees it.

Usage: mime_tree.py FILE...

For each FILE prints one line, tab-separated:
    FILE <TAB> PART-COUNT <TAB> CONTENT-TYPES
where CONTENT-TYPES lists get_content_type() of every entity of
Message.walk() (depth first, parents first, lowercased), space-separated.
When Python fails on a file: FILE <TAB> ERROR <TAB> exception.

crates/mime/tests/corpus.rs compares this with mailroom_mime::describe().
"""

import email
import email.policy
import sys


def content_types(path):
    with open(path, "rb") as f:
        data = f.read()
    message = email.message_from_bytes(data, policy=email.policy.default)
    return [part.get_content_type().lower() for part in message.walk()]


def main(paths):
    for path in paths:
        try:
            types = content_types(path)
        except Exception as error:  # report, keep going with the next file
            print(f"{path}\tERROR\t{type(error).__name__}: {error}")
            continue
        print(f"{path}\t{len(types)}\t{' '.join(types)}")


if __name__ == "__main__":
    main(sys.argv[1:])
