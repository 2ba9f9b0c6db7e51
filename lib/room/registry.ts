/**
 * The set of rooms: grants publishes (name, key, one publisher per room, room
 * count), finds rooms for viewers, and fans room events out to listeners.
 *
 * @module
 */
import type { Logger } from "../log.ts";
import type { PublishKeys } from "./keys.ts";
import {
  type Publication,
  Room,
  type RoomEvent,
  type RoomLimits,
  type RoomSnapshot,
} from "./room.ts";

/** Valid room names: 1–64 of letters, digits, `_` and `-`. */
export const ROOM_NAME_RE = /^[A-Za-z0-9_-]{1,64}$/;

/** Whether `name` is a valid room name. */
export function isValidRoomName(name: string): boolean {
  return ROOM_NAME_RE.test(name);
}

/** A publish request, protocol-neutral. */
export interface PublishAttempt {
  readonly room: string;
  readonly key: string | null;
  readonly remoteAddress: string;
  readonly encoder?: string;
}

/** The registry's answer to a {@linkcode PublishAttempt}. */
export type PublishGrant =
  | { readonly ok: true; readonly publication: Publication; readonly room: Room }
  | { readonly ok: false; readonly code: string; readonly description: string };

/** Options of a {@linkcode RoomRegistry}. */
export interface RoomRegistryOptions extends RoomLimits {
  readonly maxRooms: number;
  readonly keys: PublishKeys;
  readonly log: Logger;
}

/** All rooms of a server. */
export class RoomRegistry {
  readonly #rooms = new Map<string, Room>();
  readonly #listeners = new Set<(event: RoomEvent) => void>();
  readonly #options: RoomRegistryOptions;
  readonly #log: Logger;

  constructor(options: RoomRegistryOptions) {
    this.#options = options;
    this.#log = options.log;
  }

  /** Subscribes to start/stop events; returns the unsubscribe function. */
  onEvent(listener: (event: RoomEvent) => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  #emit = (event: RoomEvent): void => {
    for (const listener of this.#listeners) {
      try {
        listener(event);
      } catch (err) {
        this.#log.error("room event listener failed: {error}", { error: String(err) });
      }
    }
  };

  /** The room of that name, if it exists now. */
  get(name: string): Room | undefined {
    return this.#rooms.get(name);
  }

  /** The room of that name, created when missing; undefined for bad names or too many rooms. */
  open(name: string): Room | undefined {
    if (!isValidRoomName(name)) return undefined;
    let room = this.#rooms.get(name);
    if (!room) {
      if (this.#rooms.size >= this.#options.maxRooms) return undefined;
      room = new Room(name, this.#options, this.#emit, this.#log);
      this.#rooms.set(name, room);
    }
    return room;
  }

  /** Drops a room that has neither a publisher nor viewers. */
  release(name: string): void {
    const room = this.#rooms.get(name);
    if (room && !room.live && room.viewers === 0) {
      room.dispose();
      this.#rooms.delete(name);
    }
  }

  /** Rooms that are live or have viewers waiting, by name. */
  list(): RoomSnapshot[] {
    return [...this.#rooms.values()]
      .sort((a, b) => a.name.localeCompare(b.name))
      .map((room) => room.snapshot());
  }

  /** Rooms live now. */
  get liveCount(): number {
    let n = 0;
    for (const room of this.#rooms.values()) if (room.live) n++;
    return n;
  }

  /** Decides a publish: name, key, room count, one publisher per room. */
  publish(attempt: PublishAttempt): PublishGrant {
    const { room: name, remoteAddress } = attempt;
    const refuse = (code: string, description: string, why: string): PublishGrant => {
      this.#log.warn("publish refused: {why} (room {room}, from {remote})", {
        why,
        room: name.slice(0, 64),
        remote: remoteAddress,
      });
      return { ok: false, code, description };
    };
    if (!isValidRoomName(name)) {
      return refuse(
        "NetStream.Publish.BadName",
        "room names are 1-64 characters of A-Z a-z 0-9 _ -",
        "invalid room name",
      );
    }
    const check = this.#options.keys.check(name, attempt.key);
    if (check !== "ok") {
      const why = check === "missing"
        ? "no stream key"
        : check === "wrong"
        ? "wrong stream key"
        : "no key is configured for this room";
      return refuse("NetStream.Publish.Unauthorized", `publish refused: ${why}`, why);
    }
    const existing = this.#rooms.get(name);
    if (existing?.live) {
      return refuse("NetStream.Publish.BadName", `${name} is already being published`, "room busy");
    }
    const room = this.open(name);
    if (!room) {
      return refuse(
        "NetStream.Publish.Rejected",
        "the server has no room for more streams",
        "too many rooms",
      );
    }
    const publication = room.startPublication(attempt.encoder);
    this.#log.info("publish started: room {room} from {remote}", {
      room: name,
      remote: remoteAddress,
      encoder: attempt.encoder,
    });
    const end = publication.end;
    return {
      ok: true,
      room,
      publication: {
        ...publication,
        push: publication.push,
        metadata: publication.metadata,
        end: (reason) => {
          end(reason);
          this.#log.info("publish stopped: room {room} ({reason})", { room: name, reason });
          this.release(name);
        },
      },
    };
  }
}
