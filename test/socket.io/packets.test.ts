/** The fast paths of trews/socket.io's packet coding make exactly what socket.io-parser makes. */
import { Buffer } from 'node:buffer';
import { describe, expect, it } from 'vitest';
import { Decoder, Encoder, PacketType, type Packet } from 'socket.io-parser';
import { decodeEventOrAck, encode } from '../../src/socket.io/packets.js';

const { EVENT, ACK, CONNECT } = PacketType;

describe('encode', () => {
  const packets: Packet[] = [
    { type: EVENT, nsp: '/', data: ['echo', 'x'.repeat(64)] },
    { type: EVENT, nsp: '/', data: ['chat', 'é "quoted" \\ \n \u2028 😀', 1.5, -0, NaN, Infinity, true, false, null, undefined] },
    { type: EVENT, nsp: '/', data: ['mixed', 'é ü \x7f', '', 'lone \ud800 surrogate', 'pair 😀', 'quote"', 'tab\t', 0, -1e21, 2 ** 53] },
    { type: EVENT, nsp: '/chat', id: 7, data: ['ask', 1] },
    { type: EVENT, nsp: '', data: ['empty nsp'] },
    { type: ACK, nsp: '/', id: 0, data: [] },
    { type: ACK, nsp: '/admin', id: 12, data: ['ok'] },
    { type: ACK, nsp: '/', id: 3, data: [{ nested: [1, 'two'] }] },
    { type: EVENT, nsp: '/', data: ['date', new Date(0)] },
    { type: EVENT, nsp: '/', data: ['bytes', Buffer.from('hi')] },
    { type: ACK, nsp: '/', id: 1, data: [{ file: Buffer.from([1, 2]) }] },
    { type: CONNECT, nsp: '/', data: { sid: 'abc' } },
  ];

  it.each(packets.map((packet) => [JSON.stringify(packet.data)?.slice(0, 40), packet] as const))('%s: the bytes socket.io-parser makes', (_, packet) => {
    expect(encode(packet)).toEqual(new Encoder().encode(packet));
  });
});

describe('decodeEventOrAck', () => {
  /** What socket.io-parser's Decoder makes of `text`: its packet, or the error it throws. */
  function reference(text: string): Packet | Error {
    const decoder = new Decoder();
    let packet: Packet | undefined;
    decoder.on('decoded', (decoded: Packet) => (packet = decoded));
    try {
      decoder.add(text);
    } catch (err) {
      return err as Error;
    }
    return packet!;
  }

  it.each([
    '2["echo","hi"]',
    '2[42,{"a":[1,2]}]',
    '2/chat,["x"]',
    '2/chat,15["x",null]',
    '217["ask"]',
    '3[]',
    '312["ok"]',
    '3/admin,0[{"n":1}]',
    '2007["leading zeros"]',
  ])('%s: the packet socket.io-parser decodes', (text) => {
    const packet = decodeEventOrAck(text);
    expect(packet).not.toBeNull();
    expect(packet).toStrictEqual(reference(text));
  });

  it.each([
    '2["connect"]',
    '2["disconnect",1]',
    '2[true]',
    '2[]',
    '2{"a":1}',
    '3{}',
    '2["unterminated"',
    '2/chat["no comma"]',
    '2/chat',
    '2 ["space"]',
    '21 ["space"]',
    '2',
    '0{}',
    '1',
    '4"no"',
    '51-["x",{"_placeholder":true,"num":0}]',
  ])('%s: left to socket.io-parser', (text) => {
    expect(decodeEventOrAck(text)).toBeNull();
  });
});
