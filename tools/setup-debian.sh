#!/usr/bin/env bash
# Installs everything bitnet needs to build, test and run on Debian 12.
# Runs apt-get as root (through sudo when started by another user).
set -euo pipefail
if [ "$(id -u)" -ne 0 ]; then
  exec sudo "$0" "$@"
fi
export DEBIAN_FRONTEND=noninteractive
packages=(
  gcc make libc6-dev pkg-config git
  lua5.4 liblua5.4-dev            # the main target
  libreadline8                    # `bitnet repl`'s line editing, loaded at run time (lua5.4 depends on it too)
  luajit2 libluajit2-5.1-dev      # Neovim / OpenResty target (OpenResty's LuaJIT: nginx's Lua module needs it, Debian's luajit conflicts)
  libcjson-dev                    # config.json and tokenizer.json
  libcurl4-openssl-dev libssl-dev # `bitnet pull`: HTTP (libcurl) and SHA-256 (OpenSSL's libcrypto)
  luarocks                        # `luarocks make` packaging
  lua-busted lua-dkjson           # specs
  python3 python3-jsonschema      # spec/grammar_spec.lua: generated JSON checked by a validator we did not write; spec/hub_spec.lua: the stand-in Hub (tests/hub)
  valgrind                        # `make valgrind`
  neovim                          # spec/nvim_spec.lua: the plugin in nvim/
  nginx libnginx-mod-http-lua lua-resty-core lua-cjson curl   # `bitnet serve` and spec/openresty_spec.lua
  wrk                             # not needed by the load test (openresty/test/load.mjs); handy by hand
  time                            # `make bench-pull`: the peak memory of a pull (/usr/bin/time)
  gcc-aarch64-linux-gnu libc6-dev-arm64-cross qemu-user   # `make check-neon`: ARM kernels
)
# node and npm (the openai client in spec/openresty_spec.lua, @huggingface/hub
# in spec/hub_spec.lua): Debian's unless
# a node is already installed (NodeSource's nodejs carries its own npm)
if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
  packages+=(nodejs npm)
fi
# apt-get update is slow: skip everything when all packages are present
missing=0
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing=1
done
[ "$missing" -eq 0 ] && exit 0
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${packages[@]}" >/dev/null
