# Shared by scripts/train/*.sh (sourced, not run): the Python to use, path checks, and the DRY_RUN mode.
#
# DRY_RUN=1: compose the trainer config exactly as the real run would (same --config-name, same overrides),
# validate it (unknown keys, batch arithmetic), print it resolved, check that the data files and the index
# exist, and exit without starting anything (no GPU needed). Exit code 0 when everything is in place.

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
source "$ROOT/scripts/find_python.sh"

# check_server URL: the retrieval server (python -m recr1.retrieval.serve) answers /health with documents.
check_server() {
  "$PYTHON" - "$1" <<'PY'
import sys

from recr1.retrieval.remote_searcher import RemoteSearcher, RemoteSearchError

try:
    num_docs = RemoteSearcher(sys.argv[1], timeout=30).num_docs
except (RemoteSearchError, ValueError) as e:
    sys.exit(f"retrieval server not usable (RETRIEVAL_URL): {e}")
if num_docs <= 0:
    sys.exit(f"retrieval server {sys.argv[1]} (RETRIEVAL_URL) holds no documents")
PY
}

# check_paths TRAIN_FILE VAL_FILE INDEX_DIR RETRIEVER MODEL: prints one line per problem; returns 1 if any.
# With RETRIEVER=remote the server at $RETRIEVAL_URL is checked instead of an index folder.
check_paths() {
  local train=$1 val=$2 index=$3 retriever=$4 model=$5 bad=0
  for f in "$train" "$val"; do
    if [ ! -f "$f" ]; then
      echo "missing data file: $f (prepare it with scripts/data/prepare_amazon_c4.sh or prepare_esci.sh, or set DATA_DIR)" >&2
      bad=1
    fi
  done
  if [ "$retriever" = "remote" ]; then
    check_server "${RETRIEVAL_URL:-}" || bad=1
    index=""
  fi
  local marker="segments_*"
  [ "$retriever" = "dense" ] && marker="index.faiss"
  # shellcheck disable=SC2086
  if [ -n "$index" ] && { [ ! -d "$index" ] || ! compgen -G "$index/"$marker > /dev/null; }; then
    echo "missing $retriever index: $index has no $marker (build it with scripts/data/build_index.sh, or set INDEX_DIR)" >&2
    bad=1
  fi
  case "$model" in
    /*|./*|../*|~*)
      if [ ! -d "$model" ]; then echo "missing model folder: $model (BASE_MODEL)" >&2; bad=1; fi ;;
  esac
  return $bad
}

# dry_run CONFIG_NAME OVERRIDE...: validate and print the resolved config.
dry_run() {
  local config_name=$1
  shift
  "$PYTHON" - "$config_name" "$@" <<'PY'
import sys

from omegaconf import OmegaConf

from verl.trainer.config_check import ConfigError, validate_config
from verl.trainer.main_ppo import load_config

config_name, overrides = sys.argv[1], sys.argv[2:]
try:
    config = validate_config(load_config(overrides, config_name=config_name))
except ConfigError as e:
    print(e, file=sys.stderr)
    sys.exit(2)
print(f"# resolved config: --config-name {config_name} + {len(overrides)} overrides")
print(OmegaConf.to_yaml(config, resolve=True))
PY
}

# launch CONFIG_NAME LOG_NAME OVERRIDE...: DRY_RUN=1 -> check and print; otherwise train, output tee'd to logs/.
launch() {
  local config_name=$1 log_name=$2
  shift 2
  cd "$ROOT"
  if [ "${DRY_RUN:-0}" = "1" ]; then
    local status=0
    dry_run "$config_name" "$@" || status=$?
    check_paths "$TRAIN_FILE" "$VAL_FILE" "$INDEX_DIR" "$RETRIEVER" "$BASE_MODEL" || status=1
    if [ "$status" = "0" ]; then echo "DRY_RUN ok: config valid, data and index found" >&2
    else echo "DRY_RUN found problems (see above)" >&2
    fi
    return "$status"
  fi
  check_paths "$TRAIN_FILE" "$VAL_FILE" "$INDEX_DIR" "$RETRIEVER" "$BASE_MODEL" || return 1
  mkdir -p logs
  local log="logs/${log_name}-$(date '+%Y-%m-%d-%H-%M-%S').log"
  echo "[train] logging to $log" >&2
  "$PYTHON" -m verl.trainer.main_ppo --config-name "$config_name" "$@" 2>&1 | tee "$log"
}
