/**
 * The parts of the kube-apiserver's audit and admission wire formats this service reads. Only
 * the fields the filters need are declared; everything else in a body is left alone. Go omits
 * empty strings (`omitempty`), so most fields are optional and the core API group is `""` or absent.
 */
import { z } from 'zod';

const userInfoSchema = z.object({ username: z.string().optional() });

/** One `audit.k8s.io/v1` (or v1beta1) Event. */
export const auditEventSchema = z.object({
  auditID: z.string().optional(),
  stage: z.string(),
  verb: z.string(),
  requestURI: z.string().default(''),
  user: userInfoSchema.optional(),
  /** Set when the request impersonated another user; that user is the one who wrote. */
  impersonatedUser: userInfoSchema.nullish(),
  objectRef: z
    .object({
      resource: z.string().optional(),
      subresource: z.string().optional(),
      apiGroup: z.string().optional(),
      namespace: z.string().optional(),
      name: z.string().optional(),
    })
    .optional(),
  responseStatus: z.object({ code: z.number().int().optional() }).nullish(),
  requestReceivedTimestamp: z.string().optional(),
  stageTimestamp: z.string().optional(),
});

export type AuditEvent = z.output<typeof auditEventSchema>;

export const AUDIT_API_VERSIONS = ['audit.k8s.io/v1', 'audit.k8s.io/v1beta1'] as const;

/** The `request` of an `admission.k8s.io/v1` AdmissionReview. */
export const admissionRequestSchema = z.object({
  uid: z.string().min(1),
  operation: z.string(),
  resource: z.object({ group: z.string().default(''), resource: z.string().min(1) }),
  subResource: z.string().optional(),
  namespace: z.string().optional(),
  name: z.string().optional(),
  userInfo: userInfoSchema.optional(),
  dryRun: z.boolean().optional(),
});

export type AdmissionRequest = z.output<typeof admissionRequestSchema>;

export const ADMISSION_API_VERSION = 'admission.k8s.io/v1';
