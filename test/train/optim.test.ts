// The optimizers (Adam, SGD) against the torch.optim update formulas, and gradient clipping.
import { describe, expect, it } from 'vitest';

import { Adam, clipGradNorm, Parameter, SGD } from '../../lib/index';
import { native } from '../../lib/core/native';
import { expectClose } from '../helpers/reference';

describe('optimizers', () => {
  function param(values: number[], grads: number[]): Parameter {
    const p = new Parameter('p', [values.length]);
    p.data.set(values);
    p.grad.set(grads);
    return p;
  }
  const p0 = [0.5, -1.5, 2, 0.01];
  const g1 = [0.1, -0.2, 0.3, 0];
  const g2 = [-0.05, 0.4, 0.3, 1e-3];

  it.each([true, false])(
    'Adam (decoupled weight decay: %s) follows torch.optim formulas for two steps',
    (decoupled) => {
      const lr = 0.01;
      const beta1 = 0.8;
      const beta2 = 0.95;
      const eps = 1e-6;
      const wd = 0.1;
      const p = param(p0, g1);
      const opt = new Adam([p], { lr, beta1, beta2, eps, weightDecay: wd, decoupled });
      const ref = [...p0];
      const m = [0, 0, 0, 0];
      const v = [0, 0, 0, 0];
      [g1, g2].forEach((grads, s) => {
        const step = s + 1;
        p.grad.set(grads);
        opt.step();
        for (let i = 0; i < 4; i++) {
          let g = grads[i];
          if (decoupled) ref[i] *= 1 - lr * wd;
          else g += wd * ref[i];
          m[i] = beta1 * m[i] + (1 - beta1) * g;
          v[i] = beta2 * v[i] + (1 - beta2) * g * g;
          const mhat = m[i] / (1 - beta1 ** step);
          const vhat = v[i] / (1 - beta2 ** step);
          ref[i] -= (lr * mhat) / (Math.sqrt(vhat) + eps);
        }
        expectClose(p.data, ref, 2e-6, `params after step ${step}`);
      });
      expect(opt.state().step).toBe(2);
      expectClose(opt.state().tensors['m.0'], m, 1e-6, 'm');
      expectClose(opt.state().tensors['v.0'], v, 1e-6, 'v');
    },
  );

  it.each([false, true])(
    'SGD with momentum (nesterov: %s) follows torch.optim formulas for two steps',
    (nesterov) => {
      const lr = 0.1;
      const mu = 0.9;
      const wd = 0.01;
      const p = param(p0, g1);
      const opt = new SGD([p], { lr, momentum: mu, weightDecay: wd, nesterov });
      const ref = [...p0];
      const buf = [0, 0, 0, 0];
      [g1, g2].forEach((grads, s) => {
        p.grad.set(grads);
        opt.step();
        for (let i = 0; i < 4; i++) {
          const g = grads[i] + wd * ref[i];
          buf[i] = s === 0 ? g : mu * buf[i] + g;
          ref[i] -= lr * (nesterov ? g + mu * buf[i] : buf[i]);
        }
        expectClose(p.data, ref, 1e-6, `params after step ${s + 1}`);
      });
    },
  );

  it('plain SGD is p -= lr * g', () => {
    const p = param(p0, g1);
    new SGD([p], { lr: 0.5 }).step();
    expectClose(
      p.data,
      p0.map((v, i) => v - 0.5 * g1[i]),
      1e-7,
    );
  });

  it('clipGradNorm scales all gradients to the global norm, and only when above it', () => {
    const a = param([0, 0], [3, 0]);
    const b = param([0, 0, 0], [0, 4, 0]);
    expect(clipGradNorm([a, b], 10)).toBeCloseTo(5, 6);
    expect(Array.from(a.grad)).toEqual([3, 0]);
    expect(clipGradNorm([a, b], 1)).toBeCloseTo(5, 6);
    expectClose(a.grad, [0.6, 0], 1e-6, 'a.grad');
    expectClose(b.grad, [0, 0.8, 0], 1e-6, 'b.grad');
    expect(native.globalNorm([a.grad, b.grad])).toBeCloseTo(1, 6);
  });
});
