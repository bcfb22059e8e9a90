// P-tuning's LSTM prompt encoder (PEFT's PromptEncoder with encoder_reparameterization_type "LSTM"), the page side:
// its tensors by PEFT's state-dict names and shapes, and the export's float64 forward. The encoder is
//   embedding (n, C) → lstm_head = nn.LSTM(C, H, num_layers = encoder_num_layers, dropout = encoder_dropout,
//   bidirectional, batch_first) → mlp_head = Linear(2H, 2H) → ReLU → Linear(2H, C)
// over the whole table as one sequence (H = encoder_hidden_size). GPU side: lstm-runtime.ts.
import { lstmEncoderRef, type LstmDirectionParams, type LstmEncoderParams } from '../../../gpu/ref/lstm.ref.ts';

/** One direction's tensors of layer l, in nn.LSTM's state-dict order (weight_ih, weight_hh, bias_ih, bias_hh). */
function directionNames(l: number, reverse: boolean): string[] {
  const s = reverse ? '_reverse' : '';
  return [`lstm_head.weight_ih_l${l}${s}`, `lstm_head.weight_hh_l${l}${s}`, `lstm_head.bias_ih_l${l}${s}`, `lstm_head.bias_hh_l${l}${s}`];
}

/** Every tensor (prompt_encoder.default.<name> in PEFT) with its shape, in PEFT's state-dict order. */
export function lstmEncoderShapes(n: number, C: number, H: number, layers: number): [string, number[]][] {
  const out: [string, number[]][] = [['embedding.weight', [n, C]]];
  for (let l = 0; l < layers; l++) {
    const K = l === 0 ? C : 2 * H;
    for (const reverse of [false, true]) {
      const [ih, hh, bih, bhh] = directionNames(l, reverse);
      out.push([ih, [4 * H, K]], [hh, [4 * H, H]], [bih, [4 * H]], [bhh, [4 * H]]);
    }
  }
  out.push(['mlp_head.0.weight', [2 * H, 2 * H]], ['mlp_head.0.bias', [2 * H]], ['mlp_head.2.weight', [C, 2 * H]], ['mlp_head.2.bias', [C]]);
  return out;
}

/** The reference's parameters out of tensors by name (`get` throws on a missing or misshapen one). */
export function lstmEncoderParams(get: (name: string) => Float32Array, layers: number): LstmEncoderParams {
  const direction = (l: number, reverse: boolean): LstmDirectionParams => {
    const [Wih, Whh, bih, bhh] = directionNames(l, reverse).map(get);
    return { Wih, Whh, bih, bhh };
  };
  return {
    E: get('embedding.weight'),
    layers: Array.from({ length: layers }, (_, l) => ({ fwd: direction(l, false), rev: direction(l, true) })),
    W0: get('mlp_head.0.weight'),
    b0: get('mlp_head.0.bias'),
    W2: get('mlp_head.2.weight'),
    b2: get('mlp_head.2.bias'),
  };
}

/** The virtual tokens' embeddings: the encoder's output over its table (float64, rounded to f32). */
export function lstmPrompt(get: (name: string) => Float32Array, n: number, C: number, H: number, layers: number): Float32Array {
  return Float32Array.from(lstmEncoderRef(lstmEncoderParams(get, layers), { n, C, H }).P);
}
