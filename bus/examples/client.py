#!/usr/bin/python3
"""Minimal Tessera bus client (bus/PROTOCOL.md): submit one prompt, stream the text, exit non-zero on error.

Needs only Debian's python3-zmq and python3-msgpack (run it with /usr/bin/python3).
  client.py --prompt "Once upon a time" --max-tokens 32 --temperature 0
  client.py --ids 1 15043 3186 --print-ids
  client.py --info
"""
import argparse
import sys
import uuid

import msgpack
import zmq


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--server", default="tcp://127.0.0.1:5555", help="endpoint (tcp://host:port or ipc://path)")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--prompt", help="prompt text")
    src.add_argument("--ids", type=lambda text: [int(x) for x in text.replace(",", " ").split()],
                     help="prompt token ids, comma-separated (e.g. 1,2,3)")
    src.add_argument("--info", action="store_true", help="print the server's info and exit")
    p.add_argument("--max-tokens", type=int, default=64)
    p.add_argument("--temperature", type=float, default=1.0)
    p.add_argument("--top-p", type=float, default=None)
    p.add_argument("--top-k", type=int, default=None)
    p.add_argument("--seed", type=int, default=None)
    p.add_argument("--stop", action="append", default=None, help="stop string (repeatable)")
    p.add_argument("--no-stream", action="store_true", help="ask for the whole output in the final message")
    p.add_argument("--ignore-eos", action="store_true", help="keep generating past the end-of-sequence token")
    p.add_argument("--print-ids", action="store_true",
                   help="after the text, print the generated ids comma-separated as the last line")
    p.add_argument("--timeout", type=float, default=60.0, help="seconds without any message before giving up")
    return p.parse_args()


def receive(sock, timeout_s):
    """Next non-heartbeat message, or None on timeout."""
    while True:
        if not sock.poll(int(timeout_s * 1000)):
            return None
        msg = msgpack.unpackb(sock.recv(), raw=False)
        if msg.get("type") != "heartbeat":
            return msg


def main():
    args = parse_args()
    sock = zmq.Context.instance().socket(zmq.DEALER)
    sock.setsockopt(zmq.LINGER, 0)
    sock.connect(args.server)

    if args.info:
        sock.send(msgpack.packb({"v": 1, "type": "info"}))
        msg = receive(sock, args.timeout)
        if msg is None or msg.get("type") != "info":
            print(f"error: no info reply: {msg}", file=sys.stderr)
            return 1
        for key, value in msg.items():
            print(f"{key}: {value}")
        return 0

    params = {"max_tokens": args.max_tokens, "temperature": args.temperature}
    if args.ignore_eos:
        params["ignore_eos"] = True
    for key, value in (("top_p", args.top_p), ("top_k", args.top_k), ("seed", args.seed), ("stop", args.stop)):
        if value is not None:
            params[key] = value
    request_id = uuid.uuid4().hex
    request = {"v": 1, "type": "submit", "id": request_id, "params": params, "stream": not args.no_stream}
    if args.ids is not None:
        request["prompt_ids"] = args.ids
    else:
        request["prompt"] = args.prompt
    sock.send(msgpack.packb(request, use_bin_type=True))

    ids = []
    while True:
        msg = receive(sock, args.timeout)
        if msg is None:
            sock.send(msgpack.packb({"v": 1, "type": "cancel", "id": request_id}))
            print(f"\nerror: no reply within {args.timeout} s (cancelled)", file=sys.stderr)
            return 1
        kind = msg.get("type")
        if msg.get("id") not in (request_id, None):
            continue
        if kind == "tokens":
            ids.extend(msg["ids"])
            print(msg["text"], end="", flush=True)
        elif kind == "final":
            if args.no_stream:
                ids = msg.get("ids", [])
                print(msg.get("text", ""), end="")
            if args.print_ids:
                print("\n" + ",".join(map(str, ids)), end="")
            print()
            usage, timings = msg["usage"], msg["timings"]
            print(f"\n[{msg['finish_reason']}] prompt={usage['prompt_tokens']} completion={usage['completion_tokens']}"
                  f" ttft={timings['ttft_s']:.3f}s e2e={timings['e2e_s']:.3f}s", file=sys.stderr)
            return 0
        elif kind == "error":
            print(f"\nerror: {msg['code']}: {msg['message']}", file=sys.stderr)
            return 2
        # "accepted" and anything unknown: keep waiting.


if __name__ == "__main__":
    sys.exit(main())
