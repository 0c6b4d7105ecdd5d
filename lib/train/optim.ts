import { native } from '../core/native';
import { Parameter, checkNumber, sharedFloat32 } from '../nn/parameter';

/** An optimizer over a fixed list of parameters; step() applies one fused native update. */
export interface Optimizer {
  readonly kind: 'adam' | 'sgd';
  lr: number;
  step(): void;
  /** Optimizer state as named arrays (for checkpoints) and the step count. */
  state(): { step: number; tensors: Record<string, Float32Array> };
  loadState(state: { step: number; tensors: Record<string, Float32Array> }): void;
}

export interface AdamOptions {
  lr?: number;
  beta1?: number;
  beta2?: number;
  eps?: number;
  weightDecay?: number;
  /** Decoupled weight decay (AdamW), default true. */
  decoupled?: boolean;
}

export interface SgdOptions {
  lr?: number;
  momentum?: number;
  weightDecay?: number;
  nesterov?: boolean;
}

abstract class BaseOptimizer {
  protected stepCount = 0;
  protected readonly slots: Record<string, Float32Array[]> = {};

  constructor(
    protected readonly params: Parameter[],
    slotNames: string[],
  ) {
    for (const s of slotNames) this.slots[s] = params.map((p) => sharedFloat32(p.size));
  }

  protected get data(): Float32Array[] {
    return this.params.map((p) => p.data);
  }

  protected get grads(): Float32Array[] {
    return this.params.map((p) => p.grad);
  }

  state(): { step: number; tensors: Record<string, Float32Array> } {
    const tensors: Record<string, Float32Array> = {};
    for (const [slot, arrays] of Object.entries(this.slots)) {
      arrays.forEach((a, i) => (tensors[`${slot}.${i}`] = a));
    }
    return { step: this.stepCount, tensors };
  }

  loadState(state: { step: number; tensors: Record<string, Float32Array> }): void {
    for (const [slot, arrays] of Object.entries(this.slots)) {
      arrays.forEach((a, i) => {
        const t = state.tensors[`${slot}.${i}`];
        if (!t || t.length !== a.length) {
          throw new Error(
            `optimizer state '${slot}.${i}' is ${t ? `of length ${t.length}` : 'missing'}, expected length ${a.length}`,
          );
        }
      });
    }
    for (const [slot, arrays] of Object.entries(this.slots)) {
      arrays.forEach((a, i) => a.set(state.tensors[`${slot}.${i}`]));
    }
    this.stepCount = state.step;
  }
}

export class Adam extends BaseOptimizer implements Optimizer {
  readonly kind = 'adam';
  lr: number;
  readonly beta1: number;
  readonly beta2: number;
  readonly eps: number;
  readonly weightDecay: number;
  readonly decoupled: boolean;

  constructor(params: Parameter[], o: AdamOptions = {}) {
    super(params, ['m', 'v']);
    this.lr = checkNumber('lr', o.lr ?? 1e-3, 0, 1e6);
    this.beta1 = checkNumber('beta1', o.beta1 ?? 0.9, 0, 0.999999);
    this.beta2 = checkNumber('beta2', o.beta2 ?? 0.999, 0, 0.99999999);
    this.eps = checkNumber('eps', o.eps ?? 1e-8, 1e-30, 1);
    this.weightDecay = checkNumber('weightDecay', o.weightDecay ?? 0, 0, 1e6);
    this.decoupled = o.decoupled ?? true;
  }

  step(): void {
    this.stepCount++;
    native.adamUpdate(this.data, this.grads, this.slots.m, this.slots.v, this.stepCount, {
      lr: this.lr,
      beta1: this.beta1,
      beta2: this.beta2,
      eps: this.eps,
      weightDecay: this.weightDecay,
      decoupled: this.decoupled,
    });
  }
}

export class SGD extends BaseOptimizer implements Optimizer {
  readonly kind = 'sgd';
  lr: number;
  readonly momentum: number;
  readonly weightDecay: number;
  readonly nesterov: boolean;

  constructor(params: Parameter[], o: SgdOptions = {}) {
    super(params, ['velocity']);
    this.lr = checkNumber('lr', o.lr ?? 0.1, 0, 1e6);
    this.momentum = checkNumber('momentum', o.momentum ?? 0, 0, 1);
    this.weightDecay = checkNumber('weightDecay', o.weightDecay ?? 0, 0, 1e6);
    this.nesterov = o.nesterov ?? false;
    if (this.nesterov && this.momentum === 0) throw new RangeError('nesterov needs momentum > 0');
  }

  step(): void {
    this.stepCount++;
    native.sgdUpdate(this.data, this.grads, this.slots.velocity, {
      lr: this.lr,
      momentum: this.momentum,
      weightDecay: this.weightDecay,
      nesterov: this.nesterov,
    });
  }
}

/** Scales all gradients so their global norm is at most maxNorm; returns the norm before. */
export function clipGradNorm(params: Parameter[], maxNorm: number): number {
  checkNumber('maxNorm', maxNorm, 1e-30, 3.4e38);
  return native.clipGlobalNorm(
    params.map((p) => p.grad),
    maxNorm,
  );
}
