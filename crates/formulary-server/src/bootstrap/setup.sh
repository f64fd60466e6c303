#!/bin/sh
# Formulary bootstrap for Linux and macOS, served by @@SERVER@@
#
# Installs the `formulary` client for this computer into your own profile (~/.local/bin, or
# $FORMULARY_BIN_DIR), checks it against the SHA-256 the server publishes, and runs
# `formulary setup`, which points pip, uv, R, npm and the others at your organisation's view.
# Nothing needs admin rights; nothing is written outside your home folder.
#
# The token for package clients is read from $FORMULARY_TOKEN; else, in a terminal, you sign in
# with your browser (press Enter), or paste a token created at @@SERVER@@account (hidden).
# Read this script before running it:
#     curl -fsSL @@SERVER@@setup.sh | less
set -eu

server='@@SERVER@@'

fail() {
    printf 'formulary bootstrap: %s\n' "$*" >&2
    exit 1
}

case "$(uname -s)" in
    Linux) os=linux ;;
    Darwin) os=macos ;;
    *) fail "this script is for Linux and macOS; on Windows, run in PowerShell: irm ${server}setup.ps1 | iex" ;;
esac
case "$(uname -m)" in
    x86_64 | amd64) arch=x86_64 ;;
    aarch64 | arm64) arch=aarch64 ;;
    *) arch="$(uname -m)" ;;
esac
platform="$arch-$os"

# The newest `formulary` client this server allows, per platform, with its published SHA-256.
case "$platform" in
@@CASES@@    *) fail "$server offers no formulary client for $platform. Ask the people who run it to add one (docs/self-service.md, 'The bootstrap')" ;;
esac

command -v curl >/dev/null 2>&1 || fail "curl is needed to download the client; ask for it to be installed"

# A text field of the server's (compact) JSON answer.
json_field() {
    printf '%s' "$2" | sed -n "s/.*\"$1\":\"\([^\"]*\)\".*/\1/p" | head -n 1
}

# Reads a line from the terminal without showing it (it may be a token).
read_hidden() {
    stty -echo </dev/tty 2>/dev/null || true
    IFS= read -r answer </dev/tty || true
    stty echo </dev/tty 2>/dev/null || true
    printf '\n' >/dev/tty
}

# Browser sign-in (the device flow `formulary setup --device` uses): the server gives a code to
# approve on its /device page; once the person approves it, a token for package clients.
sign_in_with_browser() {
    host="$(uname -n 2>/dev/null | tr -cd 'A-Za-z0-9._-')"
    reply="$(printf '{"client_name":"formulary bootstrap on %s"}' "${host:-a computer}" |
        curl -sS -X POST -H 'Content-Type: application/json' --data-binary @- "${server}api/v1/device/code")" ||
        fail "could not reach $server to sign in (curl's message is above); check the address and your network"
    device_code="$(json_field device_code "$reply")"
    [ -n "$device_code" ] ||
        fail "$server did not start a browser sign-in: $(json_field detail "$reply"). Paste a token instead (create one at ${server}account)"
    printf 'To sign in, open %s in your browser, sign in, and approve the code %s (it expires in 10 minutes).\nWaiting for approval...\n' \
        "$(json_field verification_uri_complete "$reply")" "$(json_field user_code "$reply")" >/dev/tty
    interval=5
    while :; do
        sleep "$interval"
        # The device code goes to curl on its standard input, never on a command line.
        reply="$(printf '{"device_code":"%s"}' "$device_code" |
            curl -sS -X POST -H 'Content-Type: application/json' --data-binary @- "${server}api/v1/device/token")" ||
            fail "could not reach $server while waiting for approval (curl's message is above); run this script again"
        token="$(json_field token "$reply")"
        [ -n "$token" ] && break
        case "$(json_field error "$reply")" in
            authorization_pending) ;;
            slow_down) interval=$((interval + 5)) ;;
            *) fail "the browser sign-in did not finish: $(json_field detail "$reply")" ;;
        esac
    done
    printf 'Approved by %s: a token for package clients was issued.\n' "$(json_field username "$reply")" >/dev/tty
}

token="${FORMULARY_TOKEN:-}"
if [ -z "$token" ]; then
    if ! { true </dev/tty; } 2>/dev/null; then
        fail "no token: set FORMULARY_TOKEN to a token for package clients (create one at ${server}account), or run this in a terminal to sign in with your browser"
    fi
    printf 'Sign in with your browser [Y/n], or paste a token for package clients (from %saccount): ' "$server" >/dev/tty
    read_hidden
    case "$answer" in
        '' | [Yy] | [Yy][Ee][Ss]) sign_in_with_browser ;;
        [Nn] | [Nn][Oo])
            printf 'Paste your token for package clients (create one at %saccount): ' "$server" >/dev/tty
            read_hidden
            token="$answer"
            ;;
        *) token="$answer" ;;
    esac
fi
case "$token" in
    frm_*) ;;
    *) fail "that is not a Formulary token (tokens start with frm_); create one at ${server}account" ;;
esac
case "$token" in
    *[!A-Za-z0-9_-]*) fail "that token holds characters no Formulary token has; copy it again from ${server}account" ;;
esac

bin="${FORMULARY_BIN_DIR:-$HOME/.local/bin}"
mkdir -p "$bin" || fail "could not create $bin"
partial="$bin/.formulary.download.$$"
trap 'rm -f "$partial"' EXIT
trap 'rm -f "$partial"; exit 1' INT TERM

printf 'Downloading formulary %s for %s from %s\n' "$version" "$platform" "$server"
# The token goes to curl on its standard input (-K -), never on a command line others can see.
status="$(printf 'user = "formulary:%s"\n' "$token" | curl -sSL --retry 2 -K - -o "$partial" -w '%{http_code}' "$url")" ||
    fail "could not download the client from $server (curl's message is above); check the address and your network"
if [ "$status" != 200 ]; then
    detail="$(sed -n 's/.*"detail":"\([^"]*\)".*/\1/p' "$partial" 2>/dev/null | head -n 1)"
    fail "the server answered $status for the formulary client: ${detail:-no reason given}"
fi

if command -v sha256sum >/dev/null 2>&1; then
    actual="$(sha256sum "$partial" | cut -d ' ' -f 1)"
elif command -v shasum >/dev/null 2>&1; then
    actual="$(shasum -a 256 "$partial" | cut -d ' ' -f 1)"
elif command -v openssl >/dev/null 2>&1; then
    actual="$(openssl dgst -sha256 -r "$partial" | cut -d ' ' -f 1)"
else
    fail "no sha256sum, shasum or openssl to check the download with; nothing was installed"
fi
[ "$actual" = "$sha256" ] ||
    fail "the download does not match the SHA-256 the server published ($actual instead of $sha256); nothing was installed. Try again, and tell the people who run $server if it happens again"

chmod 755 "$partial"
mv -f "$partial" "$bin/formulary"
printf 'Installed formulary %s in %s (SHA-256 checked).\n' "$version" "$bin/formulary"

printf '%s\n' "$token" | "$bin/formulary" setup --server "$server" --token-stdin ||
    fail "formulary setup did not finish (its message is above); run it again with: $bin/formulary setup --server $server"

case ":${PATH:-}:" in
    *":$bin:"*) ;;
    *)
        printf '\n%s is not on your PATH yet. Add it for new terminals with:\n' "$bin"
        printf '    echo '\''export PATH="%s:$PATH"'\'' >> ~/.profile\n' "$bin"
        ;;
esac
printf 'Next: `formulary tools list` shows the desktop tools you may install; `formulary doctor` checks every client.\n'
