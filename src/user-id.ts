/**
 * What a user id may be, for the gateway (tokens, routes, channels) and for both clients (which
 * check recipients before sending). User ids are also Redis channel suffixes and database keys:
 * short and printable. Dependency-free and ES5, so the legacy client bundle includes it as is.
 */
export const USER_ID_PATTERN = /^[A-Za-z0-9._:@-]{1,128}$/;
