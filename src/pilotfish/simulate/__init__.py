"""pilotfish.simulate"""
