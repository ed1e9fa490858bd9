/**
 * What a topic name may be, for the gateway (routes, token claims, store keys) and for both
 * clients (which check names before subscribing or publishing). Topic names are also Redis channel
 * suffixes and database keys: short and printable. Dependency-free and ES5, so the legacy client
 * bundle includes it as is.
 */
export const TOPIC_NAME_PATTERN = /^[A-Za-z0-9._:-]{1,128}$/;
