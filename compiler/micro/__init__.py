"""The microcontroller path: Relax → TIR kernels, a liveness-planned arena, AOT C, bare-metal firmware."""

from edgecc.compiler.micro.plan import ArenaPlan, Buffer, check_plan, live_bytes_lower_bound, model_buffers, plan_arena

__all__ = ["ArenaPlan", "Buffer", "check_plan", "live_bytes_lower_bound", "model_buffers", "plan_arena"]
