/** SocketConnection's model: handler dispatch, ordered handlers, async acks, hook errors. */
import { describe, expect, it } from 'vitest';
import { SocketConnection, event, type OpenInfo } from '../../src/socket.io/index.js';
import { deferred, testEngine } from '../helpers.js';
import { client, connected, serve } from './helpers.js';

const websocket = { transports: ['websocket'] as string[] };

describe('SocketConnection', () => {
  it('@event(name) marks a method as a handler (applied as a standard decorator is)', async () => {
    const engine = testEngine();
    class Calc extends SocketConnection {
      sum(a: number, b: number) {
        return a + b;
      }
    }
    // vitest's transform (oxc) does not lower standard decorators: apply it as the runtime does.
    event('sum')(Calc.prototype.sum, { kind: 'method', name: 'sum' } as ClassMethodDecoratorContext);
    class Sub extends Calc {
      static override events = { twice: (n: number) => n * 2 };
    }
    const { url } = await serve(engine, Sub);
    const socket = client(url, websocket);
    await connected(socket);
    expect(await socket.emitWithAck('sum', 2, 3)).toBe(5);
    expect(await socket.emitWithAck('twice', 21)).toBe(42);
  });

  it('onMessage gets socket.send(); onEvent can be overridden; async handlers ack with the resolved value', async () => {
    const engine = testEngine();
    class Custom extends SocketConnection {
      override onMessage(text: unknown) {
        return `message:${String(text)}`;
      }
      override async onEvent(name: string, ...args: unknown[]) {
        await Promise.resolve();
        return `${name}(${args.join(',')})`;
      }
    }
    const { url } = await serve(engine, Custom);
    const socket = client(url, websocket);
    await connected(socket);
    expect(await socket.emitWithAck('anything', 1, 2)).toBe('anything(1,2)');
    expect(await socket.emitWithAck('message', 'hi')).toBe('message:hi');
  });

  it.each([
    [true, ['start 1', 'end 1', 'start 2', 'end 2', 'start 3', 'end 3']],
    [false, ['start 1', 'start 2', 'start 3', 'end 2', 'end 3', 'end 1']],
  ])('ordered = %s: async handlers %s', async (ordered, expected) => {
    const engine = testEngine();
    const log: string[] = [];
    class Steps extends SocketConnection {
      override ordered = ordered;
      static override events = {
        async step(n: number) {
          log.push(`start ${n}`);
          // The first step is the slowest: unordered, the others finish first.
          if (n === 1) await new Promise<void>((resolve) => engine.defer(30, resolve));
          else await Promise.resolve();
          log.push(`end ${n}`);
          return n;
        },
      };
    }
    const { url } = await serve(engine, Steps);
    const socket = client(url, websocket);
    await connected(socket);
    const acks = await Promise.all([1, 2, 3].map((n) => socket.emitWithAck('step', n)));
    expect(acks).toEqual([1, 2, 3]);
    expect(log).toEqual(expected);
  });

  it('what onOpen sends follows the CONNECT reply; what a refusing onOpen sent is dropped', async () => {
    const engine = testEngine();
    class Greeter extends SocketConnection {
      override onOpen(info: OpenInfo) {
        this.emit('hello', `welcome ${String(info.auth.name)}`);
        return info.auth.name !== 'mallory';
      }
    }
    const { url } = await serve(engine, Greeter);
    const socket = client(url, { ...websocket, auth: { name: 'ann' } });
    const hello = new Promise((resolve) => socket.once('hello', resolve));
    await connected(socket);
    expect(await hello).toBe('welcome ann');
    const refused = client(url, { ...websocket, auth: { name: 'mallory' } });
    const heard: unknown[] = [];
    refused.on('hello', (text) => heard.push(text));
    await expect(connected(refused)).rejects.toMatchObject({ message: 'Connection refused' });
    expect(heard).toEqual([]);
  });

  it('emitWithAck refuses beyond maxPendingAcks', async () => {
    const engine = testEngine();
    const outcome = deferred<string[]>();
    class Asker extends SocketConnection {
      override maxPendingAcks = 2;
      override onOpen(): void {
        const settle = (p: Promise<unknown>) => p.then((v) => `ok ${String(v)}`, (err: Error) => err.constructor.name);
        void Promise.all([settle(this.emitWithAck('q', 1)), settle(this.emitWithAck('q', 2)), settle(this.emitWithAck('q', 3))]).then(outcome.resolve);
      }
    }
    const { url } = await serve(engine, Asker);
    const socket = client(url, websocket);
    socket.on('q', (n: number, ack: (v: number) => void) => ack(n * 10));
    await connected(socket);
    expect(await outcome.promise).toEqual(['ok 10', 'ok 20', 'StateError']);
  });

  it('emitting a name socket.io-client reserves (connect, disconnect, ...) throws a TypeError', async () => {
    const engine = testEngine();
    const thrown: string[] = [];
    class Reserved extends SocketConnection {
      override onOpen(): void {
        for (const send of [() => this.emit('connect'), () => this.emitWithAck('disconnect'), () => this.server.to('x').emit('connect_error')]) {
          try {
            void send();
          } catch (err) {
            thrown.push((err as Error).constructor.name);
          }
        }
      }
    }
    const { url } = await serve(engine, Reserved);
    await connected(client(url, websocket));
    expect(thrown).toEqual(['TypeError', 'TypeError', 'TypeError']);
  });

  it('a handler that throws goes to onError; the connection stays open and later events are served', async () => {
    const engine = testEngine();
    const errors: string[] = [];
    class Faulty extends SocketConnection {
      static override events = {
        boom() {
          throw new Error('boom');
        },
        async later() {
          throw new Error('later');
        },
        ok: () => 'ok',
      };
      override onError(err: Error): void {
        errors.push(err.message);
      }
    }
    const { url } = await serve(engine, Faulty);
    const socket = client(url, websocket);
    await connected(socket);
    socket.emit('boom');
    socket.emit('later');
    expect(await socket.emitWithAck('ok')).toBe('ok');
    expect(errors).toEqual(['boom', 'later']);
  });

  it('close() disconnects the namespace: the client sees "io server disconnect", onClose sees "server namespace disconnect"', async () => {
    const engine = testEngine();
    const reasons: string[] = [];
    class Kicker extends SocketConnection {
      static override events = {
        kick(this: Kicker) {
          this.close();
        },
      };
      override onClose(reason: string): void {
        reasons.push(reason);
      }
    }
    const { url } = await serve(engine, Kicker);
    const socket = client(url, websocket);
    await connected(socket);
    const gone = new Promise((resolve) => socket.once('disconnect', resolve));
    socket.emit('kick');
    expect(await gone).toBe('io server disconnect');
    expect(reasons).toEqual(['server namespace disconnect']);
  });
});
