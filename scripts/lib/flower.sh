# shellcheck shell=bash
# The optional Flower role (FLOWER=1, off by default): whether it is on, the
# file of password hashes nginx checks /flower/ against (nginx never holds the
# password itself), and the Flower container. Its credentials are generated
# with the others (ensure_secrets). Part of scripts/common.sh; sourced, never
# executed; needs docker.sh's names.

# nginx's basic-auth file (user:hash), written at each start from the secrets file.
FLOWER_HTPASSWD_FILE="$VAR_DIR/flower.htpasswd"
# shellcheck disable=SC2034  # used by build.sh
C_FLOWER="$DOCKER_PROJECT-flower"
# Flower's port inside its container (the flower image's FLOWER_PORT); never published.
# shellcheck disable=SC2034  # used by build.sh
FLOWER_CONTAINER_PORT=5555

# Whether FLOWER asks for the Flower role; dies on a value other than 0, 1 or unset.
flower_enabled() {
  case "${FLOWER:-0}" in
    1) return 0 ;;
    0 | "") return 1 ;;
    *) die "FLOWER must be 1 (start Flower) or 0 (the default), not '$FLOWER'" ;;
  esac
}

# A value of the generated secrets file (the environment may not have loaded it).
_secret() {  # name
  sed -n "s/^$1=//p" "$SECRETS_ENV" | tail -n 1
}

# nginx's basic-auth file for /flower/, rewritten from the secrets file at each
# start (so a changed password counts at the next start). Readable by all,
# as nginx's workers may run as another user (in the container, uid 101): it
# holds a salted hash of a random 32-character password, nothing to recover.
# apr1 rather than a slower hash: nginx checks the hash on every request, and
# the password's randomness, not the hash's cost, is what protects it.
write_flower_htpasswd() {
  local user password hash
  user="$(_secret FLOWER_USER)" password="$(_secret FLOWER_PASSWORD)"
  [[ -n "$user" && -n "$password" ]] || die "no FLOWER_USER/FLOWER_PASSWORD in $SECRETS_ENV"
  hash="$(printf '%s' "$password" | openssl passwd -apr1 -stdin)"
  printf '%s:%s\n' "$user" "$hash" > "$FLOWER_HTPASSWD_FILE.tmp"
  chmod 644 "$FLOWER_HTPASSWD_FILE.tmp"
  mv -f "$FLOWER_HTPASSWD_FILE.tmp" "$FLOWER_HTPASSWD_FILE"
}

# The Flower container: the flower target of the Python image (start-flower.sh),
# on the network under the name nginx proxies to; the broker credentials and
# its own come from the env file. No port is published: nginx is the way in.
docker_run_flower() {
  local opts
  mapfile -t opts < <(docker_common_opts "$C_FLOWER" flower)
  dk run "${opts[@]}" --hostname flower --network-alias flower \
    --env-file "$SECRETS_ENV" \
    "$DOCKER_PROJECT-flower:$IMAGE_TAG"
}
