/**
 * Address forms users pass in, and the one shape trews hands back.
 *
 * In: a port number, `[host, port]`, `{ host, port }`, `{ address, port }` (what trews reports),
 * `'host:port'`, `'[v6]:port'` (TCP/UDP);
 * any other string or `{ path }` (Unix socket path; a leading '\0' is a Linux abstract name).
 * Out: `{ address, port, family }` for TCP and UDP, the path string for Unix sockets.
 */
import { isIP, isIPv4, type AddressInfo } from 'node:net';
import type { LinkOptions } from './memory.js';

export type Family = 'IPv4' | 'IPv6';

/** An IP endpoint, the shape of Node's `AddressInfo`. */
export interface InetAddress {
  address: string;
  port: number;
  family: Family;
}

/** What trews reports: an IP endpoint, or a Unix socket path. */
export type Address = InetAddress | string;

/** What trews accepts wherever it takes an address. */
export type AddressInput =
  | number
  | string
  | readonly [host: string, port: number]
  | { readonly host?: string; readonly port: number }
  | { readonly address: string; readonly port: number; readonly family?: Family }
  | { readonly path: string }
  | ({ readonly memory: string } & LinkOptions);

/** A parsed address: where to listen or connect. `host` undefined means all interfaces. */
export type Endpoint =
  | { readonly kind: 'inet'; readonly host: string | undefined; readonly port: number }
  | { readonly kind: 'unix'; readonly path: string }
  | { readonly kind: 'memory'; readonly name: string; readonly link: LinkOptions };

const ACCEPTED =
  "a port number, [host, port], { host, port }, { address, port }, 'host:port', '[ipv6]:port', a Unix socket path string, { path }, 'memory:name' or { memory: name }";

const HOST_PORT = /^([^:[\]/\s]+):(\d+)$/;
const V6_PORT = /^\[([^\]]+)\]:(\d+)$/;

function checkPort(port: unknown, input: unknown): number {
  if (typeof port !== 'number' || !Number.isInteger(port) || port < 0 || port > 65535) {
    throw new RangeError(`invalid port ${describe(port)} in address ${describe(input)}: a port is an integer 0..65535`);
  }
  return port;
}

function checkHost(host: unknown, input: unknown): string | undefined {
  if (host === undefined || host === '') return undefined;
  if (typeof host !== 'string') throw new TypeError(`invalid host ${describe(host)} in address ${describe(input)}: expected ${ACCEPTED}`);
  return host;
}

function describe(value: unknown): string {
  try {
    return typeof value === 'string' ? JSON.stringify(value) : (JSON.stringify(value) ?? String(value));
  } catch {
    return String(value);
  }
}

/**
 * Parse any address form trews accepts (a port, `[host, port]`, `{ host, port }`, `'host:port'`,
 * a Unix path, `'memory:name'`, ...). Invalid input throws a `TypeError` or `RangeError` naming
 * the accepted forms.
 */
export function parseAddress(input: AddressInput): Endpoint {
  if (typeof input === 'number') return { kind: 'inet', host: undefined, port: checkPort(input, input) };
  if (typeof input === 'string') {
    if (input.length === 0) throw new TypeError(`empty address: expected ${ACCEPTED}`);
    if (input.startsWith('\0')) return { kind: 'unix', path: input };
    if (input.startsWith(MEMORY)) return memoryEndpoint(input.slice(MEMORY.length), {}, input);
    const m = V6_PORT.exec(input) ?? HOST_PORT.exec(input);
    if (m) return { kind: 'inet', host: m[1], port: checkPort(Number(m[2]), input) };
    return { kind: 'unix', path: input };
  }
  if (Array.isArray(input)) {
    if (input.length !== 2) throw new TypeError(`invalid address ${describe(input)}: expected ${ACCEPTED}`);
    return { kind: 'inet', host: checkHost(input[0], input), port: checkPort(input[1], input) };
  }
  if (input !== null && typeof input === 'object') {
    if ('memory' in input) {
      const { memory, ...link } = input;
      return memoryEndpoint(memory, link, input);
    }
    if ('path' in input) {
      if (typeof input.path !== 'string' || input.path.length === 0) {
        throw new TypeError(`invalid Unix socket path ${describe(input.path)}: expected a non-empty string`);
      }
      return { kind: 'unix', path: input.path };
    }
    // `{ address, port, family }` is the shape trews reports: it goes back in as it came out.
    if ('address' in input) return { kind: 'inet', host: checkHost(input.address, input), port: checkPort(input.port, input) };
    if ('port' in input) return { kind: 'inet', host: checkHost(input.host, input), port: checkPort(input.port, input) };
  }
  throw new TypeError(`invalid address ${describe(input)}: expected ${ACCEPTED}`);
}

const MEMORY = 'memory:';

/**
 * A bare name that reads like a host rather than a file: `'localhost'`, an IP address, or a
 * name with a colon but no port (`'host:abc'`). As an address it is a Unix socket path, which
 * is almost surely a TCP address missing its port.
 */
export function looksLikeHost(path: string): boolean {
  if (path.includes('/') || path.startsWith('\0')) return false;
  return path === 'localhost' || isIP(path) !== 0 || path.includes(':');
}

/**
 * What to add to an error about the Unix path `path` when nothing is there (`ENOENT`) and the
 * name has no '/': it may be a TCP address given without its port. Empty otherwise.
 */
export function unixPathSlip(path: string): string {
  if (path.includes('/') || path.startsWith('\0')) return '';
  return `: there is no Unix socket ${JSON.stringify(path)} in ${process.cwd()} (a string that is not 'host:port' is a Unix socket path). ${slipAdvice(path)}`;
}

/** The TCP forms and the explicit Unix forms, for a message about a slip. */
export function slipAdvice(path: string): string {
  return `For TCP give 'host:port', [host, port] or { host, port }; for a Unix socket named like this, './${path}' or { path: ${JSON.stringify(path)} }`;
}

function memoryEndpoint(name: unknown, link: LinkOptions, input: unknown): Endpoint {
  if (typeof name !== 'string' || name.length === 0) throw new TypeError(`invalid memory address ${describe(input)}: the name must be a non-empty string`);
  return { kind: 'memory', name, link };
}

/** Normalise what Node reports (`AddressInfo`, a path, nothing) into an `Address`. */
export function toAddress(
  info: AddressInfo | string | null | undefined | { address?: string; port?: number; family?: string | number },
): Address | null {
  if (info == null) return null;
  if (typeof info === 'string') return info.length > 0 ? info : null;
  if (typeof info.address !== 'string' || typeof info.port !== 'number') return null;
  const fam = info.family;
  const family: Family = fam === 'IPv6' || fam === 6 || (fam === undefined && info.address.includes(':')) ? 'IPv6' : 'IPv4';
  // Only an IPv6 address can be IPv4-mapped: an IPv4 one (most getter calls) skips the test.
  const v4 = family === 'IPv6' ? mappedIPv4(info.address) : null;
  if (v4 !== null) return { address: v4, port: info.port, family: 'IPv4' };
  return { address: info.address, port: info.port, family };
}

/**
 * The IPv4 address inside an IPv4-mapped IPv6 address (`'::ffff:127.0.0.1'` gives
 * `'127.0.0.1'`), null for any other address. An IPv4 peer of a dual-stack (`'::'`) socket
 * reaches it under such an address; trews reports it as the IPv4 peer it is (and replies to
 * `'127.0.0.1'` on such a socket are mapped back when sent).
 */
export function mappedIPv4(address: string): string | null {
  if (address.length > 22 || !/^::ffff:/i.test(address)) return null;
  const v4 = address.slice(7);
  return isIPv4(v4) ? v4 : null;
}

/** `127.0.0.1:80`, `[::1]:80`, a path (abstract names shown with a leading '@'), or `-`. */
export function formatAddress(address: Address | Endpoint | null | undefined): string {
  if (address == null) return '-';
  if (typeof address === 'string') return address.startsWith('\0') ? `@${address.slice(1)}` : address;
  if ('kind' in address) {
    if (address.kind === 'unix') return formatAddress(address.path);
    if (address.kind === 'memory') return `${MEMORY}${address.name}`;
    const host = address.host ?? '*';
    return host.includes(':') ? `[${host}]:${address.port}` : `${host}:${address.port}`;
  }
  return address.family === 'IPv6' ? `[${address.address}]:${address.port}` : `${address.address}:${address.port}`;
}
