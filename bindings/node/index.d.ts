// TypeScript declarations of the rmkv Node.js binding (index.js).

/** A failed librmkv call. */
export class RmkvError extends Error {
  /** Numeric rmkv_status (1 invalid argument, 2 I/O, 3 format, 4 mismatch, ...). */
  readonly status: number;
  /** "RMKV_ERR_FORMAT". */
  readonly statusName: string;
  /** Same as statusName. */
  readonly code: string;
  /** rmkv_last_error(): what went wrong and what to fix. */
  readonly rmkvMessage: string;
}

type Bytes = string | Buffer | ArrayBufferView | ArrayBuffer;
type Ids = Int32Array | ArrayLike<number>;

/** Owns a C handle; close() frees it (a FinalizationRegistry frees what was forgotten). */
declare class Handle {
  readonly closed: boolean;
  close(): void;
}

export interface TokenizerTrainOptions {
  vocabSize?: number;
  minFrequency?: number;
  /** Default: <pad> <unk> <start> <end> <think> </think>. */
  specialTokens?: string[];
  /** Comma-separated NFD, NFC, NFKD, NFKC, Lowercase; "" = none; default "NFD". */
  normalizer?: string;
  individualDigits?: boolean;
  addPrefixSpace?: boolean;
  byteAlphabet?: boolean;
  nThreads?: number;
  /** Return true to stop the training (RmkvError RMKV_ERR_CANCELLED). */
  progress?: (stage: string, done: number, total: number) => boolean | void;
}

export class Tokenizer extends Handle {
  static load(path: string): Tokenizer;
  static fromJSON(json: Bytes): Tokenizer;
  static train(files: string[], options?: TokenizerTrainOptions): Tokenizer;
  static trainFromTexts(texts: Bytes[], options?: TokenizerTrainOptions): Tokenizer;
  save(path: string): void;
  toJSON(): string;
  encode(text: Bytes): Int32Array;
  decode(ids: Ids): string;
  decodeBytes(ids: Ids): Buffer;
  tokenId(token: string): number | null;
  tokenString(id: number): string;
  readonly vocabSize: number;
  stream(): TokenStream;
}

/** Streaming decoder: text of tokens fed one at a time, never half a UTF-8 character. */
export class TokenStream extends Handle {
  feed(id: number): string;
  flush(): string;
}

export interface ModelOptions {
  /** "cpu" (default), "cuda", "cuda:N". */
  device?: string;
  /** rmkv_model_load: map the file (default true). */
  useMmap?: boolean;
}

export class Model extends Handle {
  static load(path: string, options?: ModelOptions): Model;
  static fromBuffer(data: Bytes, options?: ModelOptions): Model;
  /** config: keys of SPEC section 2 (object or JSON text). */
  static create(config: object | string, tokenizer?: Tokenizer | null, seed?: number | bigint,
                options?: ModelOptions): Model;
  save(path: string, dtype?: 'f32' | 'bf16' | 'f16'): void;
  /** Borrowed from the model; null when it has none. */
  readonly tokenizer: Tokenizer | null;
  readonly vocabSize: number;
  readonly configJSON: string;
  readonly config: Record<string, unknown>;
  /** Fingerprint of config and weights, 64 hex digits. */
  readonly id: string;
  readonly nParams: number;
  session(opts?: SessionOptions): Session;
}

/** rmkv_session_params. */
export interface SessionOptions {
  /** CPU threads of the session's computations; 0 (default): OpenMP's setting. */
  nThreads?: number;
  /** Of products with BF16 weights (a BF16 model file); default 'auto' (bf16 where the CPU has AVX512-BF16, and on CUDA devices). */
  precision?: 'auto' | 'fp32' | 'bf16';
}

export interface SamplerOptions {
  /** 0 = greedy; default 0.8. */
  temperature?: number;
  topK?: number;
  topP?: number;
  minP?: number;
  repetitionPenalty?: number;
  penaltyWindow?: number;
  presencePenalty?: number;
  frequencyPenalty?: number;
  seed?: number | bigint;
  /** Added to the logits of these tokens before everything else; -Infinity bans a token. */
  logitBias?: Record<number, number>;
  /** Tokens never drawn. */
  bannedTokens?: number[];
}

export interface GenerateOptions extends SamplerOptions {
  /** Tokens generated at most (default 256). */
  maxTokens?: number;
  /** A sampled stop token ends the generation; its text is not emitted. */
  stopTokens?: number[];
  /** The generation ends when the text contains one; emitted up to it only. */
  stopStrings?: string[];
  /** One chat turn: the prompt is the user's text, <start> ... <end>, then the memory is flushed. */
  chat?: boolean;
  /** Default: the model's tokenizer. */
  tokenizer?: Tokenizer;
  /** Receives each piece of text as it is generated (never half a character); return true to cancel. */
  onPiece?: (piece: string) => boolean | void;
}

export interface GenerateResult {
  text: string;
  stopReason: 'limit' | 'token' | 'string' | 'cancelled';
  nTokens: number;
  /** Which stop token or stop string matched; -1 otherwise. */
  stopIndex: number;
}

export class Session extends Handle {
  readonly model: Model;
  /** Logits after the last token: the session's own buffer, overwritten by the next step. */
  step(tokens: number | Ids, options?: { logits?: true }): Float32Array;
  step(tokens: number | Ids, options: { logits: false }): null;
  /** Logits after every token (views over one new buffer). */
  stepAll(tokens: Ids): Float32Array[];
  readonly logits: Float32Array;
  flush(): void;
  reset(): void;
  clone(): Session;
  readonly position: number;
  readonly segmentFill: number;
  readonly stateSize: number;
  saveState(): Buffer;
  loadState(data: Bytes): void;
  saveStateFile(path: string): void;
  loadStateFile(path: string): void;
  /** Draws the next token from the last logits (not stepped). */
  sample(options?: SamplerOptions): number;
  /** Generates and streams a continuation of prompt (text, token ids, or null: after the last token stepped). */
  generate(prompt: string | Buffer | Ids | null, options?: GenerateOptions): GenerateResult;
}

/** One token for each session (all of one model), computed together: their rows share every
 * matrix product. tokens[i] goes to sessions[i]; returns one row of logits per session. */
export function stepTogether(sessions: Session[], tokens: Ids, options?: { logits?: true }): Float32Array[];
export function stepTogether(sessions: Session[], tokens: Ids, options: { logits: false }): null;
export function version(): string;
/** The path the library was loaded from (or the name given to the dynamic loader). */
export const libraryPath: string;
