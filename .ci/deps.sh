# Debian 12 packages and an installer for them; sourced by .ci/run and
# examples/demo.sh so that both install the same things the same way.
#
#   . .ci/deps.sh
#   pq_install_deps $PQ_PKGS_DEMO || exit 1     # quiet when nothing is missing

# What building and running prequalify needs (the demo).
PQ_PKGS_DEMO="build-essential cmake pkg-config python3 curl openssl ca-certificates
  lua5.4 liblua5.4-dev lua-cjson lua-argparse lua-filesystem libcurl4-openssl-dev libssl-dev"
# Plus what the whole test suite needs.
PQ_PKGS_CI="$PQ_PKGS_DEMO lua-luv lua-cqueues lua-busted lua-check lua-ldoc lua-discount luarocks valgrind clang procps nginx-light groff-base python3-yaml"

# pq_missing PKG...: prints the packages that are not installed.
pq_missing() {
  local p
  for p in "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || printf '%s\n' "$p"
  done
}

# pq_install_deps PKG...: installs the missing ones with apt-get (as root, or
# through sudo). Prints one line when it installs something, nothing otherwise.
pq_install_deps() {
  local missing
  missing=$(pq_missing "$@" | tr '\n' ' ')
  missing=${missing% }
  [ -n "$missing" ] || return 0
  echo "== installing: $missing"
  local sudo=""
  [ "$(id -u)" -ne 0 ] && sudo="sudo"
  $sudo apt-get update -q >/dev/null || return 1
  # shellcheck disable=SC2086 # one word per package
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -yq --no-install-recommends $missing >/dev/null
}
