"""pilotfish.config"""
