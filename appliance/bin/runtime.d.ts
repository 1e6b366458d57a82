/** Node flags of the appliance (runtime.js). */
export declare const NODE_ARGS: string[];
/** `env` with the appliance's defaults under it (runtime.js). */
export declare function runtimeEnv(root: string, env?: NodeJS.ProcessEnv): NodeJS.ProcessEnv;
