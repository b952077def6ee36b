"""The cluster rehearsal: the rendered chart and a PA-GRPO RayJob on one machine (see __main__)."""
