/**
 * Webhooks: subscribers are told when a room's stream starts and stops, with signed,
 * durable, ordered, retried deliveries.
 *
 * - {@linkcode WebhookService}: subscriptions, the SQLite queue, the dispatcher.
 * - {@linkcode openWebhooks}: the service a server's Config describes.
 * - {@linkcode signatureHeader} / {@linkcode verifySignature}: the `Sluice-Signature` scheme.
 * - {@linkcode parseSubscriptionInput} / {@linkcode parseSubscriptionPatch}: input checks.
 *
 * @module
 */
export {
  type ConfigSubscription,
  type DeliveryView,
  type SubscriptionView,
  WebhookConflictError,
  WebhookNotFoundError,
  WebhookService,
  type WebhookServiceOptions,
} from "./service.ts";
export { configSubscriptions, openWebhooks, type WebhookConfig } from "./from_config.ts";
export {
  constantTimeEqual,
  generateSecret,
  parseSignatureHeader,
  SIGNATURE_HEADER,
  signatureHeader,
  verifySignature,
} from "./signature.ts";
export {
  EVENT_TYPES,
  LIMITS,
  parseSubscriptionInput,
  parseSubscriptionPatch,
  redactUrl,
  type SubscriptionInput,
  type SubscriptionPatch,
  ValidationError,
  type WebhookEventType,
} from "./validate.ts";
export {
  type AttemptResult,
  backoffDelay,
  classify,
  DEFAULT_RETRY_POLICY,
  nextRetry,
  parseRetryAfter,
  type RetryDecision,
  type RetryPolicy,
  type Verdict,
} from "./policy.ts";
export {
  type Clock,
  Dispatcher,
  type DispatcherOptions,
  signedRequest,
  systemClock,
} from "./dispatcher.ts";
export { httpSender, type OutgoingRequest, type Sender } from "./sender.ts";
export {
  type DeliveryOutcome,
  type DeliveryRecord,
  type DueDelivery,
  type Subscription,
  WebhookStore,
} from "./store.ts";
export {
  newEventId,
  type PingPayload,
  type StreamEventPayload,
  type WebhookPayload,
  type WebhookStream,
} from "./payload.ts";
