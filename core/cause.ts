/** Why a snapshot was taken. Shared by the trigger sources, the queue, the worker and the manifest. */
import { z } from 'zod';

export const TRIGGER_SOURCES = ['audit', 'admission', 'etcd-watch', 'schedule', 'manual'] as const;
export type TriggerSource = (typeof TRIGGER_SOURCES)[number];

export const causeSchema = z.object({
  /** The source that created the snapshot's job (the first trigger of its window). */
  source: z.enum(TRIGGER_SOURCES),
  /** How many triggers each source contributed. */
  counts: z.partialRecord(z.enum(TRIGGER_SOURCES), z.number().int().nonnegative()).optional(),
  /** A few of the resources that changed, e.g. `apps/deployments shop/web`. */
  samples: z.array(z.string()).optional(),
  /** The debounce window the snapshot closes, when it came from the queue. */
  window: z.string().optional(),
});

export type Cause = z.infer<typeof causeSchema>;
