/**
 * A stand-in `etcdutl` for the etcd 3.5/3.6 restore path. Only etcd 3.4 installs here, and 3.6 has
 * no `etcdctl snapshot restore/status` any more, so this script accepts exactly the command lines
 * etcdutl 3.6 documents, refuses anything else (exit 2, so a wrong argv fails the test), logs each
 * accepted call, and delegates the work to etcdctl 3.4 with ETCDCTL_API=3. What it proves: our argv
 * is etcdutl's; what it cannot prove: etcdutl's own behaviour, which is etcdctl 3.4's here.
 */
import { chmod, mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';

export const FAKE_ETCDUTL_VERSION = '3.6.0';

/** Writes `<dir>/etcdutl`; returns the directory to put first on PATH and the call log's path. */
export async function writeEtcdutlWrapper(dir: string): Promise<{ bin: string; log: string }> {
  const bin = join(dir, 'bin');
  await mkdir(bin, { recursive: true });
  const log = join(dir, 'etcdutl-calls.log');
  const script = `#!/bin/sh
log=${JSON.stringify(log)}
refuse() { echo "etcdutl wrapper: not an etcdutl 3.6 command line: $*" >&2; exit 2; }
if [ "$#" -eq 1 ] && [ "$1" = version ]; then
  echo "version" >> "$log"
  printf 'etcdutl version: ${FAKE_ETCDUTL_VERSION}\\nAPI version: 3.6\\n'
  exit 0
fi
[ "$1" = snapshot ] || refuse "$@"
case "$2" in
  status)
    [ "$#" -eq 5 ] && [ -f "$3" ] && [ "$4" = -w ] && [ "$5" = json ] || refuse "$@"
    echo "status $3" >> "$log"
    ETCDCTL_API=3 exec etcdctl snapshot status "$3" -w json ;;
  restore)
    file="$3"; [ -f "$file" ] || refuse "$@"
    shift 3
    seen_data_dir=
    args=
    while [ "$#" -gt 0 ]; do
      case "$1" in
        --data-dir|--name|--initial-cluster|--initial-cluster-token|--initial-advertise-peer-urls)
          [ "$#" -ge 2 ] || refuse "$1 needs a value"
          case "$2" in --*|"") refuse "$1 needs a value" ;; esac
          [ "$1" = --data-dir ] && seen_data_dir=1
          args="$args $1 $2"; shift 2 ;;
        --skip-hash-check) args="$args $1"; shift ;;
        *) refuse "unknown flag $1" ;;
      esac
    done
    [ -n "$seen_data_dir" ] || refuse "--data-dir is required"
    echo "restore $file$args" >> "$log"
    # Values have no spaces in tests; word splitting of $args is intended.
    ETCDCTL_API=3 exec etcdctl snapshot restore "$file" $args ;;
  *) refuse "$@" ;;
esac
`;
  await writeFile(join(bin, 'etcdutl'), script);
  await chmod(join(bin, 'etcdutl'), 0o755);
  return { bin, log };
}
