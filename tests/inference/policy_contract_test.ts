// The shared policy contract, run on the in-process implementations.
import { OnnxPolicy, WorkerPolicy } from "../../inference/mod.ts";
import { testdataPath } from "../_helpers.ts";
import { policyContract } from "./_policy_contract.ts";

for (const dir of ["decoder-fp32", "decoder-fp16", "decoder-merged"]) {
  policyContract(`OnnxPolicy(${dir})`, async () => {
    const policy = await OnnxPolicy.load(testdataPath(`models/${dir}`), { threads: 1 });
    return { policy, close: () => policy.close() };
  });
}

policyContract("WorkerPolicy(decoder-fp32)", async () => {
  const policy = await WorkerPolicy.load(testdataPath("models/decoder-fp32"), { threads: 1 });
  return { policy, close: () => policy.close() };
});
