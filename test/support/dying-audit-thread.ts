/**
 * An audit decode thread that dies on a body starting with `X` and is the real thread otherwise,
 * for the pool's test of a thread that ends mid-batch. Imports run in order: the hook listens first.
 */
import './dying-audit-thread-hook.js';
import '../../webhook/audit-decode-thread.js';
