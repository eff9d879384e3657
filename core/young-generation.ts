/**
 * Keeps V8's young generation at the size it has when this runs (1 MiB per semi-space on 64-bit
 * when nothing large loaded before) for the whole process, without NODE_OPTIONS. V8 doubles the semi-spaces up to 16 MiB each as objects survive
 * scavenges; a snapshot's stream (thousands of 32 KiB chunks a second) grew them to the maximum
 * within a second, which kept ~30 MiB of heap committed and let chunk buffers that are already
 * passed on wait that much longer for a scavenge. `--max-semi-space-size` is read only when the
 * heap is set up, but the growth factor is read at each resize, so it can be set from here.
 * Imported first by the entry points (cli/main.ts, bench/run-ours.ts), before modules load.
 * Measured (README > Performance): a 256 MiB snapshot to a file peaked at 141-156 MiB RSS with
 * the default, 97-100 MiB with this.
 *
 * Not in the `webhook` role: it streams nothing, and parsing audit batches (a few MiB of objects
 * alive at once) in 1 MiB semi-spaces promoted every batch to the old generation; the profile of
 * the audit benchmark had GC at a fifth of the webhook's CPU, and letting V8 size the young
 * generation cut GC time by half (README > Performance, "what the profile showed").
 */
import { setFlagsFromString } from 'node:v8';

if (process.argv[2] !== 'webhook') setFlagsFromString('--semi-space-growth-factor=1');
