/**
 * Interop with mosaik's side of simpy.io's message protocol, driven by a Python 3 peer (standard
 * library only) that reads and writes the wire as mosaik-api-v3's `Channel` does: a 4-byte
 * big-endian length, UTF-8 JSON `[type, id, content]` (0 request, 1 success, 2 failure), ids
 * from 0, a failure sent as `[type, message, *traceback lines]` and received as
 * `RemoteException(*content)`, which needs a type and a message: given anything else its
 * reader task dies and every request after that waits forever. Python's json writes and reads
 * NaN and Infinity bare.
 */
import { describe, expect, it } from 'vitest';
import { CodecError, createJsonCodec, MessageConnection, RemoteError, Server, type ReadError } from '../src/index.js';
import { deferred, portOf, python, testEngine } from './helpers.js';

const PY_MOSAIK = String.raw`
import asyncio, json, math, sys, traceback

REQUEST, SUCCESS, FAILURE = 0, 1, 2

class RemoteException(Exception):
    """As mosaik-api-v3's: built as RemoteException(*content)."""
    def __init__(self, remote_type, remote_msg, *further_args):
        super().__init__(remote_type, remote_msg, *further_args)
        self.remote_type = remote_type
        self.remote_msg = remote_msg
        self.further_args = further_args

def frame(obj):
    data = json.dumps(obj).encode('utf-8')
    return len(data).to_bytes(4, 'big') + data

class Channel:
    def __init__(self, reader, writer):
        self.reader, self.writer = reader, writer
        self.ids = iter(range(1 << 62))
        self.pending = {}
        self.requests = asyncio.Queue()
        self.task = asyncio.get_running_loop().create_task(self.receive_forever())

    async def receive_forever(self):
        # Only a closed connection ends this loop; anything it cannot take kills the task.
        try:
            while True:
                size = int.from_bytes(await self.reader.readexactly(4), 'big')
                msg_type, msg_id, content = json.loads((await self.reader.readexactly(size)).decode('utf-8'))
                if msg_type == REQUEST:
                    await self.requests.put((msg_id, content))
                elif msg_type == SUCCESS:
                    self.pending.pop(msg_id).set_result(content)
                elif msg_type == FAILURE:
                    self.pending.pop(msg_id).set_exception(RemoteException(*content))
        except asyncio.IncompleteReadError as e:
            for future in self.pending.values():
                future.set_exception(e)
            await self.requests.put(None)

    async def send(self, value):
        msg_id = next(self.ids)
        future = asyncio.get_running_loop().create_future()
        self.pending[msg_id] = future
        self.writer.write(frame([REQUEST, msg_id, value]))
        await self.writer.drain()
        # mosaik would wait forever once its reader died: say so instead.
        await asyncio.wait([future, self.task], timeout=10, return_when=asyncio.FIRST_COMPLETED)
        if not future.done():
            died = self.task.done() and self.task.exception()
            raise SystemExit('no reply to %r; reader died: %r' % (value, died))
        return future.result()

    async def reply(self, msg_id, msg_type, content):
        self.writer.write(frame([msg_type, msg_id, content]))
        await self.writer.drain()

async def serve(ch, seen):
    """Answer requests (one at a time, as a mosaik simulator does) until the peer says stop."""
    while True:
        item = await asyncio.wait_for(ch.requests.get(), 10)
        if item is None:
            return
        msg_id, (method, arg) = item
        try:
            if method == 'step':
                # A request of our own while the peer's request is pending: get_data in a step.
                data = await ch.send(['get_data', arg])
                result = {'time': arg + 1, 'data': data}
            elif method == 'fail':
                raise ValueError('bad step size: %r' % (arg,))
            elif method == 'fail_simpy':
                try:
                    raise RuntimeError('I am failing')
                except RuntimeError as e:
                    # simpy.io's Message: the whole formatted traceback as one string.
                    await ch.reply(msg_id, FAILURE, ''.join(traceback.format_exception(type(e), e, e.__traceback__)))
                continue
            elif method == 'echo':
                seen['echoed'] = [repr(x) for x in arg]
                result = arg
            elif method == 'non_finite':
                result = [float('nan'), float('inf'), -float('inf'), 'NaN', {'NaN': 'Infinity'}]
            elif method == 'stop':
                await ch.reply(msg_id, SUCCESS, 'bye')
                return
            else:
                raise KeyError(method)
            await ch.reply(msg_id, SUCCESS, result)
        except Exception as e:
            # mosaik-api-v3's Request.set_exception
            await ch.reply(msg_id, FAILURE, [type(e).__name__, str(e), *traceback.format_exception(*sys.exc_info())])

async def main(port, mode):
    reader, writer = await asyncio.open_connection('127.0.0.1', port)
    ch = Channel(reader, writer)
    seen = {}
    if mode == 'strict':
        try:
            await ch.send(['echo', [float('nan')]])
            seen['reply'] = 'unexpected'
        except asyncio.IncompleteReadError:
            seen['closed'] = True
    else:
        seen['sum'] = await ch.send(['add', [1, 2, 3]])
        try:
            await ch.send(['missing', 'x'])
        except RemoteException as e:
            seen['failure'] = [e.remote_type, e.remote_msg, list(e.further_args)]
        # The reader took the failure and lives on.
        seen['after'] = await ch.send(['add', [2, 2]])
        await ch.send(['ready', None])
        await serve(ch, seen)
    writer.close()
    await writer.wait_closed()
    print(json.dumps(seen))

asyncio.run(main(int(sys.argv[1]), sys.argv[2]))
`;

/** The trews side: answers the Python peer's requests and asks its own (mosaik's master role). */
class Master extends MessageConnection {
  static connected = deferred<Master>();
  static readyToAsk = deferred<Master>();
  override failures = 'mosaik' as const;
  override codec = createJsonCodec({ nonFinite: true });
  readErrors: ReadError[] = [];
  /** Own requests pending when the peer's get_data arrived. */
  pendingAtGetData: number[] = [];

  override onConnect() {
    Master.connected.resolve(this);
  }

  override onRequest(content: unknown): unknown {
    const [method, arg] = content as [string, unknown];
    switch (method) {
      case 'add':
        return (arg as number[]).reduce((a, b) => a + b, 0);
      case 'ready':
        Master.readyToAsk.resolve(this);
        return null;
      case 'get_data':
        this.pendingAtGetData.push(this.pendingRequests);
        return { [`sim-${String(arg)}`]: { P: 1.5 } };
      case 'echo':
        return arg;
      default:
        throw new TypeError(`no method '${method}'`); // no code: the type slot gets the name
    }
  }

  override onReadError(err: ReadError) {
    this.readErrors.push(err);
    super.onReadError(err);
  }
}

async function serveMaster(configure: (master: typeof Master) => typeof Master = (m) => m) {
  Master.connected = deferred<Master>();
  Master.readyToAsk = deferred<Master>();
  const engine = testEngine();
  const server = new Server(configure(Master), { engine });
  await server.listen(['127.0.0.1', 0]);
  return String(portOf(server.localAddress));
}

describe("interop with mosaik's Channel (Python peer, failures: 'mosaik')", () => {
  it('success, failures both ways, a nested request, NaN and Infinity both ways', async () => {
    const port = await serveMaster();
    const out = python(PY_MOSAIK, [port, 'full']);
    const master = await Promise.race([Master.readyToAsk.promise, out.then(() => Promise.reject(new Error('python ended early')))]);

    // trews asks; while that request is pending, Python asks trews (get_data in a step).
    expect(await master.request(['step', 10])).toEqual({ time: 11, data: { 'sim-10': { P: 1.5 } } });
    expect(master.pendingAtGetData).toEqual([1]);

    // A failure from Python, mosaik's list: readable fields, the traceback kept apart.
    const failed = (await master.request(['fail', 0]).catch((e: unknown) => e)) as RemoteError;
    expect(failed).toBeInstanceOf(RemoteError);
    expect(failed).toMatchObject({ code: 'ERR_TREWS_REMOTE', message: 'bad step size: 0', remoteCode: 'ValueError' });
    expect(failed.remoteStack).toMatch(/^Traceback \(most recent call last\):\n/);
    expect(failed.remoteStack).toMatch(/\n {2}File "<string>", line \d+, in serve\n/);
    expect(failed.remoteStack).toMatch(/ValueError: bad step size: 0\n$/);

    // A failure as simpy.io words it: one traceback string, taken apart.
    const simpy = (await master.request(['fail_simpy', null]).catch((e: unknown) => e)) as RemoteError;
    expect(simpy).toMatchObject({ message: 'I am failing', remoteCode: 'RuntimeError' });
    expect(simpy.remoteStack).toMatch(/^Traceback \(most recent call last\):\n {2}File "<string>", line \d+, in serve\nRuntimeError: I am failing\n$/);

    // Non-finite numbers: Python writes them bare; this codec reads and writes them.
    expect(await master.request(['non_finite', null])).toEqual([NaN, Infinity, -Infinity, 'NaN', { NaN: 'Infinity' }]);
    expect(await master.request(['echo', [NaN, -Infinity, 1.5]])).toEqual([NaN, -Infinity, 1.5]);

    expect(await master.request(['stop', null])).toBe('bye');
    const seen = JSON.parse(await out) as Record<string, unknown>;
    expect(seen).toEqual({
      sum: 6,
      // The failure of a trews handler, unpacked by mosaik: RemoteException(type, message).
      failure: ['TypeError', "no method 'missing'", []],
      after: 4,
      echoed: ['nan', '-inf', '1.5'],
    });
    await master.whenClosed();
    expect(master.readErrors).toEqual([]);
  });

  it('with the strict JSON codec, a bare NaN is a CodecError that names the option, and the channel closes', async () => {
    const port = await serveMaster(
      (m) =>
        class Strict extends m {
          override codec = createJsonCodec();
        },
    );
    const out = python(PY_MOSAIK, [port, 'strict']);
    const master = await Master.connected.promise;
    expect(JSON.parse(await out)).toEqual({ closed: true });
    await master.whenClosed();
    expect(master.readErrors).toHaveLength(1);
    expect(master.readErrors[0]).toBeInstanceOf(CodecError);
    expect(master.readErrors[0]!.message).toMatch(/^a \d+-byte packet is not valid json data: .*createJsonCodec\(\{ nonFinite: true \}\)/);
  });
});
