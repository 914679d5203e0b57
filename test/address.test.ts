import { describe, it, expect } from 'vitest';
import fc from 'fast-check';
import { mappedIPv4, parseAddress, toAddress, formatAddress, type AddressInput } from '../src/address.js';
import { Client, Connection, Server, type Address } from '../src/index.js';
import { deferred, testEngine } from './helpers.js';

/** What the error message must name: every accepted address form. */
const FORMS = [/port number/, /\[host, port\]/, /\{ host, port \}/, /'host:port'/, /\[ipv6\]:port/, /path/];

function thrown(input: unknown): Error {
  try {
    parseAddress(input as AddressInput);
  } catch (err) {
    return err as Error;
  }
  throw new Error(`parseAddress(${String(input)}) did not throw`);
}

describe('parseAddress: accepted forms', () => {
  it('a number: a TCP port on all interfaces', () => {
    expect(parseAddress(8080)).toEqual({ kind: 'inet', host: undefined, port: 8080 });
    expect(parseAddress(0)).toEqual({ kind: 'inet', host: undefined, port: 0 });
    expect(parseAddress(65535)).toEqual({ kind: 'inet', host: undefined, port: 65535 });
  });

  it('[host, port]', () => {
    expect(parseAddress(['127.0.0.1', 80])).toEqual({ kind: 'inet', host: '127.0.0.1', port: 80 });
    expect(parseAddress(['::1', 443])).toEqual({ kind: 'inet', host: '::1', port: 443 });
    expect(parseAddress(['localhost', 0])).toEqual({ kind: 'inet', host: 'localhost', port: 0 });
    // An empty host means all interfaces.
    expect(parseAddress(['', 80])).toEqual({ kind: 'inet', host: undefined, port: 80 });
  });

  it('{ host, port } and { port }', () => {
    expect(parseAddress({ host: 'example.com', port: 25 })).toEqual({ kind: 'inet', host: 'example.com', port: 25 });
    expect(parseAddress({ host: '::', port: 1 })).toEqual({ kind: 'inet', host: '::', port: 1 });
    expect(parseAddress({ port: 9000 })).toEqual({ kind: 'inet', host: undefined, port: 9000 });
  });

  it("'host:port'", () => {
    expect(parseAddress('localhost:80')).toEqual({ kind: 'inet', host: 'localhost', port: 80 });
    expect(parseAddress('127.0.0.1:65535')).toEqual({ kind: 'inet', host: '127.0.0.1', port: 65535 });
    expect(parseAddress('example.com:0')).toEqual({ kind: 'inet', host: 'example.com', port: 0 });
  });

  it("'[v6addr]:port'", () => {
    expect(parseAddress('[::1]:80')).toEqual({ kind: 'inet', host: '::1', port: 80 });
    expect(parseAddress('[::]:8080')).toEqual({ kind: 'inet', host: '::', port: 8080 });
    expect(parseAddress('[fe80::1%lo0]:22')).toEqual({ kind: 'inet', host: 'fe80::1%lo0', port: 22 });
    expect(parseAddress('[::ffff:127.0.0.1]:1')).toEqual({ kind: 'inet', host: '::ffff:127.0.0.1', port: 1 });
  });

  it('any other string: a Unix socket path', () => {
    for (const path of ['/tmp/trews.sock', 'relative.sock', './x.sock', '/var/run/a:80', 'dir/host:80', 'C:\\pipe\\x']) {
      expect(parseAddress(path)).toEqual({ kind: 'unix', path });
    }
  });

  it('{ path }', () => {
    expect(parseAddress({ path: '/tmp/x.sock' })).toEqual({ kind: 'unix', path: '/tmp/x.sock' });
    // { path } is always a path, even when it looks like host:port.
    expect(parseAddress({ path: 'localhost:80' })).toEqual({ kind: 'unix', path: 'localhost:80' });
  });

  it("'\\0abstract': a Linux abstract name", () => {
    expect(parseAddress('\0abstract')).toEqual({ kind: 'unix', path: '\0abstract' });
    expect(parseAddress({ path: '\0abstract' })).toEqual({ kind: 'unix', path: '\0abstract' });
  });

  it("a leading '\\0' is an abstract name even when the rest looks like host:port", () => {
    expect(parseAddress('\0name:80')).toEqual({ kind: 'unix', path: '\0name:80' });
    expect(parseAddress('\0[::1]:80')).toEqual({ kind: 'unix', path: '\0[::1]:80' });
  });

  it('property: host:port strings and [v6]:port strings round-trip through formatAddress', () => {
    const hostArb = fc.oneof(
      fc.ipV4(),
      fc.domain(),
      fc.constantFrom('localhost', 'a', 'my-host'),
    );
    fc.assert(
      fc.property(hostArb, fc.integer({ min: 0, max: 65535 }), (host, port) => {
        const endpoint = parseAddress(`${host}:${port}`);
        expect(endpoint).toEqual({ kind: 'inet', host, port });
        expect(formatAddress(endpoint)).toBe(`${host}:${port}`);
        expect(parseAddress([host, port])).toEqual(endpoint);
        expect(parseAddress({ host, port })).toEqual(endpoint);
      }),
      { numRuns: 200 },
    );
    fc.assert(
      fc.property(fc.ipV6(), fc.integer({ min: 0, max: 65535 }), (host, port) => {
        const endpoint = parseAddress(`[${host}]:${port}`);
        expect(endpoint).toEqual({ kind: 'inet', host, port });
        expect(formatAddress(endpoint)).toBe(`[${host}]:${port}`);
        expect(parseAddress([host, port])).toEqual(endpoint);
      }),
      { numRuns: 200 },
    );
  });
});

describe('parseAddress: invalid input', () => {
  it.each<[string, unknown]>([
    ['port 70000', 70000],
    ['port -1', -1],
    ['port 1.5', 1.5],
    ['port NaN', NaN],
    ['port Infinity', Infinity],
    ["'localhost:99999'", 'localhost:99999'],
    ["'[::1]:65536'", '[::1]:65536'],
    ['[host, 70000]', ['h', 70000]],
    ['{ host, port: -5 }', { host: 'h', port: -5 }],
    ["{ port: '80' }", { port: '80' }],
    ["['h', '80']", ['h', '80']],
  ])('%s: RangeError naming the accepted port range', (_name, input) => {
    const err = thrown(input);
    expect(err).toBeInstanceOf(RangeError);
    expect(err.message).toMatch(/0\.\.65535/);
  });

  it.each<[string, unknown]>([
    ["''", ''],
    ['null', null],
    ['undefined', undefined],
    ['{}', {}],
    ["['h']", ['h']],
    ['[1, 2]', [1, 2]],
    ["['h', 1, 2]", ['h', 1, 2]],
    ['[]', []],
    ['true', true],
    ['a function', () => 80],
    ['a symbol', Symbol('addr')],
    ['a bigint', 80n],
    ["{ host: 1, port: 80 }", { host: 1, port: 80 }],
  ])('%s: TypeError naming the accepted forms', (_name, input) => {
    const err = thrown(input);
    expect(err).toBeInstanceOf(TypeError);
    for (const form of FORMS) expect(err.message).toMatch(form);
  });

  it('{ path } with an empty or non-string path is a TypeError', () => {
    for (const input of [{ path: '' }, { path: 42 }, { path: null }]) {
      const err = thrown(input);
      expect(err).toBeInstanceOf(TypeError);
      expect(err.message).toMatch(/path/);
    }
  });

  it('an object whose JSON form throws still gets a readable error', () => {
    const cyclic: Record<string, unknown> = {};
    cyclic.self = cyclic;
    expect(thrown(cyclic)).toBeInstanceOf(TypeError);
  });
});

describe('toAddress', () => {
  it("normalises Node's AddressInfo", () => {
    expect(toAddress({ address: '127.0.0.1', port: 80, family: 'IPv4' })).toEqual({ address: '127.0.0.1', port: 80, family: 'IPv4' });
    expect(toAddress({ address: '::1', port: 443, family: 'IPv6' })).toEqual({ address: '::1', port: 443, family: 'IPv6' });
    // Numeric families (Node 18.0-18.3) and missing families.
    expect(toAddress({ address: '::1', port: 1, family: 6 })).toEqual({ address: '::1', port: 1, family: 'IPv6' });
    expect(toAddress({ address: '10.0.0.1', port: 1, family: 4 })).toEqual({ address: '10.0.0.1', port: 1, family: 'IPv4' });
    expect(toAddress({ address: 'fe80::1', port: 2 })).toEqual({ address: 'fe80::1', port: 2, family: 'IPv6' });
    expect(toAddress({ address: '10.0.0.1', port: 2 })).toEqual({ address: '10.0.0.1', port: 2, family: 'IPv4' });
    // Only the three fields are kept.
    expect(Object.keys(toAddress({ address: '1.2.3.4', port: 5, family: 'IPv4' }) as object).sort()).toEqual([
      'address',
      'family',
      'port',
    ]);
  });

  it("an IPv4-mapped IPv6 address (an IPv4 peer of a '::' socket) is reported as IPv4", () => {
    expect(toAddress({ address: '::ffff:127.0.0.1', port: 80, family: 'IPv6' })).toEqual({ address: '127.0.0.1', port: 80, family: 'IPv4' });
    expect(toAddress({ address: '::FFFF:10.1.2.3', port: 1, family: 'IPv6' })).toEqual({ address: '10.1.2.3', port: 1, family: 'IPv4' });
    // Other IPv6 addresses, including other embeddings of IPv4, stay as they are.
    for (const address of ['::1', '::', '::ffff:7f00:1', '64:ff9b::127.0.0.1', '::ffff:0:127.0.0.1', '::ffff:300.0.0.1']) {
      expect(mappedIPv4(address)).toBeNull();
      expect(toAddress({ address, port: 1, family: 'IPv6' })).toEqual({ address, port: 1, family: 'IPv6' });
    }
  });

  it('a path string stays a path; nothing becomes null', () => {
    expect(toAddress('/tmp/x.sock')).toBe('/tmp/x.sock');
    expect(toAddress('\0abstract')).toBe('\0abstract');
    expect(toAddress('')).toBeNull();
    expect(toAddress(null)).toBeNull();
    expect(toAddress(undefined)).toBeNull();
    expect(toAddress({})).toBeNull();
    expect(toAddress({ address: '1.2.3.4' })).toBeNull();
  });
});

describe('formatAddress', () => {
  it('formats addresses', () => {
    expect(formatAddress({ address: '127.0.0.1', port: 80, family: 'IPv4' })).toBe('127.0.0.1:80');
    expect(formatAddress({ address: '::1', port: 80, family: 'IPv6' })).toBe('[::1]:80');
    expect(formatAddress('/tmp/x.sock')).toBe('/tmp/x.sock');
    expect(formatAddress('\0abstract')).toBe('@abstract');
    expect(formatAddress(null)).toBe('-');
    expect(formatAddress(undefined)).toBe('-');
  });

  it('formats endpoints', () => {
    expect(formatAddress(parseAddress(8080))).toBe('*:8080');
    expect(formatAddress(parseAddress('localhost:80'))).toBe('localhost:80');
    expect(formatAddress(parseAddress('[::1]:80'))).toBe('[::1]:80');
    expect(formatAddress(parseAddress(['::', 1]))).toBe('[::]:1');
    expect(formatAddress(parseAddress('/tmp/x.sock'))).toBe('/tmp/x.sock');
    expect(formatAddress(parseAddress({ path: '\0abs' }))).toBe('@abs');
  });
});

describe('addresses go back in as they came out', () => {
  it('accepts { address, port, family } as reported by localAddress/remoteAddress', () => {
    expect(parseAddress({ address: '::1', port: 80, family: 'IPv6' })).toEqual({ kind: 'inet', host: '::1', port: 80 });
    expect(parseAddress({ address: '127.0.0.2', port: 0 })).toEqual({ kind: 'inet', host: '127.0.0.2', port: 0 });
    expect(() => parseAddress({ address: '127.0.0.1', port: 70000 })).toThrow(RangeError);
  });
});

describe('IPv4 peers of a dual-stack TCP listener', () => {
  it("read as { address: '127.0.0.1', family: 'IPv4' } on both ends, in onAccept and in onClose; IPv6 peers stay IPv6", async () => {
    const engine = testEngine();
    const seen: Array<[string, Address | null, Address | null]> = [];
    const closed = deferred();
    class Echo extends Connection {
      override onRead(data: Buffer) {
        this.write(data);
      }
      override onClose() {
        seen.push(['close', this.remoteAddress, this.localAddress]);
        closed.resolve();
      }
    }
    class Dual extends Server {
      override onAccept(connection: Echo) {
        seen.push(['accept', connection.remoteAddress, connection.localAddress]);
      }
    }
    const server = new Dual(Echo, { engine });
    await server.listen(0); // '::' where IPv6 exists: IPv4 peers arrive as ::ffff:127.0.0.1
    const { port, address: listening } = server.localAddress as { port: number; address: string };
    const client = new Client({ engine, encoding: 'utf8' });
    const echoed = deferred<string>();
    client.on('read', (data: string) => echoed.resolve(data));
    await client.connect(['127.0.0.1', port]);
    client.write('ping');
    expect(await echoed.promise).toBe('ping');
    const clientPort = (client.localAddress as { port: number }).port;
    await client.close();
    await closed.promise;
    const peer = { address: '127.0.0.1', port: clientPort, family: 'IPv4' };
    const local = { address: '127.0.0.1', port, family: 'IPv4' };
    expect(seen).toEqual([
      ['accept', peer, local],
      ['close', peer, local],
    ]);
    expect(client.remoteAddress).toEqual(local);
    if (listening !== '::') return; // no IPv6 here
    expect(server.localAddress).toMatchObject({ address: '::', family: 'IPv6' });
    // An IPv6 peer of the same listener stays IPv6.
    const six = new Client({ engine });
    await six.connect(['::1', port]);
    expect(six.remoteAddress).toEqual({ address: '::1', port, family: 'IPv6' });
    await six.close();
    await server.close();
  });
});
