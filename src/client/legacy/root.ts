/**
 * The global object (`window`, `self`, or a VM context's global). Nothing is emitted for this
 * file: the UMD wrapper of scripts/build-legacy.mjs passes the global in as the factory's
 * `lpRoot` parameter, and the build drops every import, so the name resolves to that parameter.
 */
export declare const lpRoot: { localStorage?: Storage; [name: string]: unknown };
