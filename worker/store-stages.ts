/**
 * The stages every stored object passes through after its body (compression, then AES-GCM or
 * age encryption), and what the manifest records about them. Snapshots (backup.ts) and delta-log
 * segments (delta/segment-write.ts) build them here, so both are readable by the same reader code.
 */
import type { Stream } from 'node:stream';
import type { Config } from '../core/config/index.js';
import type { SnapshotStage } from '../core/errors.js';
import { codecOf, levelFor } from './codecs.js';
import { ageEncryptStage, Sha256Meter, type AgeEncryptStage } from './crypto/age.js';
import { encryptStage, type EncryptStage } from './crypto/stages.js';

export interface StoreStagesOptions {
  /** Compression and encryption settings: the snapshot's, for both snapshots and segments. */
  config: { snapshot: Pick<Config['snapshot'], 'compression' | 'compressionLevel'> } & Partial<
    Pick<Config, 'encryption'>
  >;
  /**
   * Hash the stored bytes even without age (segments always record it).
   * @defaultValue false: only age objects record the stored bytes' hash, as snapshot manifests did
   */
  hashStored?: boolean;
}

/** Registers a stage for failure attribution (first-failure.ts). */
export type StageTag = <S extends Stream>(stream: S, stage: SnapshotStage) => S;

export interface StoreStages {
  /** In pipeline order; empty for an unencrypted object stored without compression. */
  stages: NodeJS.ReadWriteStream[];
  /** The manifest's `transforms` for these stages (callers prepend their own, e.g. verify-sha256). */
  transforms: string[];
  /** Appended to the object's key after the codec's extension: `.age` for age, else ''. */
  suffix: string;
  encryption: EncryptStage['manifest'] | undefined;
  age: AgeEncryptStage['manifest'] | undefined;
  /**
   * Hashes the stored bytes (last stage) when age is on or `hashStored` was asked. On the main
   * thread: a worker thread for it was measured (bench, 256 MiB) and added ~20 MiB of RSS and
   * more CPU than the hash it took away.
   */
  storedHash: Sha256Meter | undefined;
}

export interface PreparedStages {
  /**
   * Creates the stages (a zstd child process starts here): call once, right before the pipeline
   * runs, so that nothing is left running when an earlier step fails.
   */
  open(tag?: StageTag): StoreStages;
}

/**
 * Reads the key files each time (a rotated Secret applies to the next object without a restart);
 * an unreadable key is a ConfigError before anything is read or stored.
 */
export async function prepareStoreStages(options: StoreStagesOptions): Promise<PreparedStages> {
  const { config } = options;
  const encryption = await encryptStage(config.encryption);
  const age = await ageEncryptStage(config.encryption);
  let opened = false;
  return {
    open(tag: StageTag = (s) => s): StoreStages {
      if (opened) throw new Error('store stages are single-use');
      opened = true;
      return openStages(options, encryption, age, tag);
    },
  };
}

function openStages(
  options: StoreStagesOptions,
  encryption: EncryptStage | undefined,
  age: AgeEncryptStage | undefined,
  tag: StageTag,
): StoreStages {
  const { config } = options;
  const stages: NodeJS.ReadWriteStream[] = [];
  const transforms: string[] = [];
  const codec = codecOf(config.snapshot.compression);
  if (codec.compress && codec.transform) {
    stages.push(tag(codec.compress(levelFor(codec, config.snapshot.compressionLevel)), 'compress'));
    transforms.push(codec.transform);
  }
  if (encryption) {
    stages.push(tag(encryption.stream, 'encrypt'));
    transforms.push(encryption.transform);
  }
  if (age) {
    stages.push(tag(age.stream, 'encrypt'));
    transforms.push(age.transform);
  }
  const storedHash = age || options.hashStored ? new Sha256Meter() : undefined;
  if (storedHash) stages.push(storedHash);
  return {
    stages,
    transforms,
    suffix: age?.suffix ?? '',
    encryption: encryption?.manifest,
    age: age?.manifest,
    storedHash,
  };
}
