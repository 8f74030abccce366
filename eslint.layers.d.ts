/** Types of eslint.layers.js, for the test that runs the rule (test/layers.test.ts). */
import type { ESLint } from 'eslint';

export declare const LAYERS: Record<string, number>;
export declare function layerOf(file: string): string | undefined;
export declare const layersPlugin: ESLint.Plugin;
